import assert from "node:assert/strict";
import { parseNetDev, parseProcStat, parsePs, toStatsJson } from "./stats.ts";

Deno.test("parsePs() keeps the container's rows and the whole command", () => {
  const output = "UID PID PPID C STIME TTY TIME CMD\n" +
    "root 1 0 0 10:00 ? 00:00:01 /sbin/init splash\n" +
    "root 4242 4200 0 10:01 ? 00:00:00 sleep 1000\n";
  assert.deepEqual(parsePs(output, [4242]), {
    Titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
    Processes: [["root", "4242", "4200", "0", "10:01", "?", "00:00:00", "sleep 1000"]],
  });
  assert.throws(() => parsePs("USER COMMAND\n", [1]), /PID field/);
});

Deno.test("parseProcStat() counts the host's CPU time in nanoseconds", () => {
  const stat = "cpu  100 0 50 1000 10 0 5 7 0 0\ncpu0 50 0 25 500 5 0 2 0 0 0\n" +
    "cpu1 50 0 25 500 5 0 3 0 0 0\nintr 1\n";
  assert.deepEqual(parseProcStat(stat), { usage: 1165 * 1e7, cpus: 2 });
});

Deno.test("parseNetDev() reads interfaces without lo", () => {
  const text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame\n" +
    "    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n" +
    "  eth0: 1000 10 1 2 0 0 0 0 500 5 3 4 0 0 0 0\n";
  assert.deepEqual(parseNetDev(text), {
    eth0: {
      rx_bytes: 1000,
      rx_packets: 10,
      rx_errors: 1,
      rx_dropped: 2,
      tx_bytes: 500,
      tx_packets: 5,
      tx_errors: 3,
      tx_dropped: 4,
    },
  });
});

Deno.test("toStatsJson() maps cgroup v1 metrics to Docker's stats", () => {
  const stats = toStatsJson({ id: "abc", name: "web" }, {
    metrics: {
      pids: { current: 2, limit: 100 },
      cpu: {
        usage: { total: 5000, kernel: 1000, user: 4000, perCpu: [2500, 2500] },
        throttling: { periods: 1, throttledPeriods: 0, throttledTime: 0 },
      },
      memory: {
        totalInactiveFile: 10,
        pgFault: 3,
        usage: { usage: 1000, max: 2000, limit: 2 ** 62, failcnt: 0 },
      },
      blkio: { ioServiceBytesRecursive: [{ op: "Read", major: 8, minor: 0, value: 4096 }] },
    },
    system: { usage: 1e12, cpus: 2 },
    machineMemory: 8 * 2 ** 30,
    now: new Date("2026-01-01T00:00:00Z"),
  });
  assert.equal(stats.name, "/web");
  assert.deepEqual(stats.pids_stats, { current: 2, limit: 100 });
  assert.equal(stats.cpu_stats.cpu_usage.total_usage, 5000);
  assert.deepEqual(stats.cpu_stats.cpu_usage.percpu_usage, [2500, 2500]);
  assert.equal(stats.cpu_stats.online_cpus, 2);
  assert.equal(stats.memory_stats.limit, 8 * 2 ** 30, "unlimited shows the host's memory");
  assert.equal(stats.memory_stats.stats?.total_inactive_file, 10);
  assert.equal(stats.memory_stats.stats?.pgfault, 3);
  assert.equal(stats.blkio_stats.io_service_bytes_recursive?.[0]?.value, 4096);
  assert.equal(stats.read, "2026-01-01T00:00:00.000Z");
  assert.equal(stats.preread, "0001-01-01T00:00:00Z");
});
