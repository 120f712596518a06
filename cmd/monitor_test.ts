import assert from "node:assert/strict";
import { bytesSize, cpuPercent, formatEvent, memoryUsage, statsRow } from "./monitor.ts";
import { prepareArchiveCopy, rebaseName, splitCpArg, splitPathDirEntry } from "./cp.ts";

Deno.test("cpuPercent() is Docker's share of host CPU time times CPUs", () => {
  const sample = {
    cpu_stats: { cpu_usage: { total_usage: 300 }, system_cpu_usage: 2000, online_cpus: 4 },
    precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 1000 },
  };
  assert.equal(cpuPercent(sample), 80);
  assert.equal(cpuPercent({ cpu_stats: sample.cpu_stats }), 60);
  assert.equal(cpuPercent({}), 0);
});

Deno.test("statsRow() formats memory, IO and pids like docker stats", () => {
  const row = statsRow({
    id: "0123456789abcdef",
    name: "/web",
    pids_stats: { current: 3 },
    memory_stats: { usage: 3 * 2 ** 20, limit: 64 * 2 ** 20, stats: { total_inactive_file: 0 } },
    networks: { eth0: { rx_bytes: 1500, tx_bytes: 0 } },
    blkio_stats: { io_service_bytes_recursive: [{ op: "Read", value: 4096 }] },
  });
  assert.equal(row.ID, "0123456789ab");
  assert.equal(row.Name, "web");
  assert.equal(row.MemUsage, "3MiB / 64MiB");
  assert.equal(row.MemPerc, "4.69%");
  assert.equal(row.NetIO, "1.5kB / 0B");
  assert.equal(row.BlockIO, "4.1kB / 0B");
  assert.equal(row.PIDs, "3");
  assert.equal(bytesSize(1.5234 * 2 ** 20), "1.523MiB");
  assert.equal(
    memoryUsage({ memory_stats: { usage: 100, stats: { total_inactive_file: 40 } } }),
    60,
  );
});

Deno.test("formatEvent() prints Docker's line with sorted attributes", () => {
  assert.equal(
    formatEvent({
      Type: "container",
      Action: "start",
      Actor: { ID: "abc", Attributes: { name: "web", image: "busybox" } },
      timeNano: Date.parse("2026-11-23T10:00:00.000Z") * 1e6,
    }),
    "2026-11-23T10:00:00.000000000Z container start abc (image=busybox, name=web)\n",
  );
});

Deno.test("cp path rules follow Docker's", () => {
  assert.deepEqual(splitCpArg("web:/etc"), { container: "web", path: "/etc" });
  assert.deepEqual(splitCpArg("./a:b"), { path: "./a:b" });
  assert.deepEqual(splitPathDirEntry("/a/b/"), { dir: "/a", base: "b" });
  assert.deepEqual(splitPathDirEntry("/a/b/."), { dir: "/a/b", base: "." });
  assert.deepEqual(splitPathDirEntry("/"), { dir: "/", base: "/" });
  const dir = { path: "/src/dir", exists: true, isDir: true };
  const file = { path: "/src/file", exists: true, isDir: false };
  assert.deepEqual(prepareArchiveCopy(dir, { path: "out", exists: true, isDir: true }), {
    dir: "out",
  });
  assert.deepEqual(prepareArchiveCopy(dir, { path: "x/new", exists: false, isDir: false }), {
    dir: "x",
    rename: { from: "dir", to: "new" },
  });
  assert.deepEqual(prepareArchiveCopy(file, { path: "x/f2", exists: true, isDir: false }), {
    dir: "x",
    rename: { from: "file", to: "f2" },
  });
  assert.throws(() => prepareArchiveCopy(dir, { path: "f", exists: true, isDir: false }));
  assert.throws(() => prepareArchiveCopy(file, { path: "nodir/", exists: false, isDir: false }));
  assert.equal(rebaseName("dir/a", { from: "dir", to: "new" }), "new/a");
  assert.equal(rebaseName("./a", { from: ".", to: "new" }), "new/a");
  assert.equal(rebaseName("/etc", { from: "/", to: "out" }), "out/etc");
});
