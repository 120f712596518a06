/**
 * End-to-end tests: a real daemon with its own containerd, runc and the busybox image built from
 * Debian's busybox-static, driven through pouch's CLI, the Docker CLI and the raw API.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  busyboxTarball,
  inspectContainer as inspect,
  pouchOk as ok,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

Deno.test("container lifecycle through pouch's CLI", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step("run prints the output and exits with the container's code", async () => {
      const hi = await daemon.pouch(["run", "--rm", "busybox", "echo", "hi"]);
      assert.equal(hi.code, 0, hi.stderr);
      assert.equal(hi.stdout, "hi\n");
      const code = await daemon.pouch([
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo err >&2; exit 3",
      ]);
      assert.equal(code.code, 3);
      assert.equal(code.stderr.trim(), "err");
    });

    await t.step("--rm removes the container", async () => {
      const ps = await ok(daemon, ["ps", "-a", "-q"]);
      assert.equal(ps.trim(), "");
    });

    await t.step("a create whose image layers were collected unpacks them again", async () => {
      // Create does not ask containerd whether the layers are there (a call per create): the
      // snapshot's Prepare finds out. Remove the image's top layer, as a GC would.
      const ctr = async (...args: string[]) => {
        const out = await new Deno.Command("ctr", {
          args: ["-a", `${daemon.home}/containerd/containerd.sock`, ...args],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(out.success, new TextDecoder().decode(out.stderr));
        return new TextDecoder().decode(out.stdout);
      };
      const rows = (await ctr("snapshots", "ls")).trim().split("\n").slice(1)
        .map((line) => line.trim().split(/\s+/));
      const parents = new Set(rows.map((row) => row.length === 3 ? row[1] : ""));
      const leaves = rows.filter((row) => row.at(-1) === "Committed" && !parents.has(row[0]));
      assert.equal(leaves.length, 1, `one top layer expected: ${JSON.stringify(rows)}`);
      await ctr("snapshots", "rm", leaves[0]![0]!);
      const hi = await daemon.pouch(["run", "--rm", "busybox", "echo", "again"]);
      assert.equal(hi.code, 0, hi.stderr);
      assert.equal(hi.stdout, "again\n");
      assert.match(await ctr("snapshots", "ls"), new RegExp(leaves[0]![0]!));
    });

    await t.step("a missing command exits 127, a non-executable one 126", async () => {
      const missing = await daemon.pouch(["run", "--name", "nocmd", "busybox", "/no/such"]);
      assert.equal(missing.code, 127, missing.stderr);
      const notExec = await daemon.pouch(["run", "--name", "noexec", "busybox", "/etc/passwd"]);
      assert.equal(notExec.code, 126, notExec.stderr);
      await ok(daemon, ["rm", "-f", "nocmd", "noexec"]);
      // With --rm, nothing is left of a start that failed (Docker's rule).
      const gone = await daemon.pouch(["run", "--rm", "--name", "rmnocmd", "busybox", "/no/such"]);
      assert.equal(gone.code, 127, gone.stderr);
      const inspect = await daemon.pouch(["inspect", "rmnocmd"]);
      assert.equal(inspect.code, 1, inspect.stdout);
      assert.equal((await ok(daemon, ["ps", "-a", "-q"])).trim(), "");
    });

    await t.step("run -d, ps, stop, start, restart, pause, unpause, kill, rm", async () => {
      const id = (await ok(daemon, ["run", "-d", "--name", "web", "busybox", "sleep", "1000"]))
        .trim();
      assert.match(id, /^[0-9a-f]{64}$/);
      assert.equal((await inspect(daemon, "web")).State.Status, "running");
      const ps = await ok(daemon, ["ps"]);
      assert.match(ps, /web/);
      assert.match(ps, /Up /);
      assert.match(ps, /runc/);

      await ok(daemon, ["pause", "web"]);
      assert.equal((await inspect(daemon, "web")).State.Status, "paused");
      await ok(daemon, ["unpause", "web"]);
      assert.equal((await inspect(daemon, "web")).State.Status, "running");

      await ok(daemon, ["stop", "-t", "1", "web"]);
      const stopped = await inspect(daemon, "web");
      assert.equal(stopped.State.Status, "exited");
      assert.equal(stopped.State.ExitCode, 137);

      await ok(daemon, ["start", "web"]);
      assert.equal((await inspect(daemon, "web")).State.Status, "running");
      await ok(daemon, ["restart", "-t", "0", "web"]);
      const restarted = await inspect(daemon, "web");
      assert.equal(restarted.State.Status, "running");
      assert.notEqual(restarted.State.StartedAt, stopped.State.StartedAt);

      await ok(daemon, ["kill", "-s", "KILL", "web"]);
      assert.equal((await inspect(daemon, "web")).State.ExitCode, 137);
      // pid 1 ignores signals it has no handler for; a trap makes TERM count.
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' TERM; while true; do sleep 0.1; done",
      ]);
      await ok(daemon, ["kill", "-s", "TERM", "trapper"]);
      await waitFor(async () => (await inspect(daemon, "trapper")).State.Status === "exited");
      assert.equal((await inspect(daemon, "trapper")).State.ExitCode, 42);
      await ok(daemon, ["rm", "trapper"]);

      await ok(daemon, ["rename", "web", "web2"]);
      assert.equal((await inspect(daemon, "web2")).Name, "/web2");
      await ok(daemon, ["rm", "web2"]);
      assert.equal((await daemon.api("GET", "/containers/web2/json")).status, 404);
    });

    await t.step("logs: json-file, --tail, -t, -f, and stderr kept apart", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "logger",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; done; sleep 1; echo late",
      ]);
      const all = await daemon.pouch(["logs", "-f", "logger"]);
      assert.equal(all.code, 0, all.stderr);
      assert.equal(all.stdout, "out1\nout2\nout3\nlate\n");
      assert.equal(all.stderr, "err1\nerr2\nerr3\n");
      const tail = await daemon.pouch(["logs", "--tail", "1", "logger"]);
      assert.equal(tail.stdout, "late\n");
      const stamped = await daemon.pouch(["logs", "-t", "--tail", "1", "logger"]);
      assert.match(stamped.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z late\n$/);
      const wait = await ok(daemon, ["wait", "logger"]);
      assert.equal(wait.trim(), "0");
      const log = await Deno.readTextFile(
        `${daemon.home}/containers/${(await inspect(daemon, "logger")).Id}/json.log`,
      );
      assert.match(log, /"log":"out1\\n","stream":"stdout","time":"/);
      await ok(daemon, ["rm", "logger"]);
    });

    await t.step(
      "env, workdir, user, hostname, entrypoint and labels reach the process",
      async () => {
        const out = await ok(daemon, [
          "run",
          "--rm",
          "-e",
          "FOO=bar",
          "-w",
          "/tmp",
          "-u",
          "app",
          "-h",
          "box",
          "-l",
          "tier=web",
          "--entrypoint",
          "sh",
          "busybox",
          "-c",
          "echo $FOO $(pwd) $(id -u):$(id -g) $(hostname) $HOSTNAME",
        ]);
        assert.equal(out, "bar /tmp 1000:1000 box box\n");
      },
    );

    await t.step("limits are in the container's cgroup", async () => {
      const id = (await ok(daemon, [
        "run",
        "-d",
        "--name",
        "limited",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "--cpuset-cpus",
        "0",
        "busybox",
        "sleep",
        "1000",
      ])).trim();
      const cg = (controller: string, file: string) =>
        Deno.readTextFile(`/sys/fs/cgroup/${controller}/pouch/${id}/${file}`).then((s) => s.trim());
      assert.equal(await cg("memory", "memory.limit_in_bytes"), String(64 * 1024 * 1024));
      assert.equal(await cg("cpu", "cpu.cfs_quota_us"), "50000");
      assert.equal(await cg("cpu", "cpu.cfs_period_us"), "100000");
      assert.equal(await cg("cpu", "cpu.shares"), "512");
      assert.equal(await cg("pids", "pids.max"), "50");
      assert.equal(await cg("cpuset", "cpuset.cpus"), "0");
      await ok(daemon, ["rm", "-f", "limited"]);
    });

    await t.step("--read-only, --cap-drop and --privileged take effect", async () => {
      const ro = await daemon.pouch(["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
      assert.notEqual(ro.code, 0);
      assert.match(ro.stderr, /Read-only file system/);
      const capDrop = await daemon.pouch([
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "1",
        "/tmp",
      ]);
      assert.notEqual(capDrop.code, 0);
      const priv = await ok(daemon, [
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
      ]);
      assert.match(
        priv,
        /CapEff:\s+000001ffffffffff|CapEff:\s+0000003fffffffff|CapEff:\s+000001fffeffffff/,
      );
    });

    await t.step("--net host shares the host's network, the default is the bridge", async () => {
      const own = await ok(daemon, ["run", "--rm", "busybox", "ls", "/sys/class/net"]);
      assert.equal(own.trim(), "eth0\nlo");
      const none = await ok(daemon, [
        "run",
        "--rm",
        "--net",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
      ]);
      assert.equal(none.trim(), "lo");
      const host = await ok(daemon, [
        "run",
        "--rm",
        "--net",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
      ]);
      assert.notEqual(host.trim(), "lo");
    });

    await t.step("images, tag, rmi", async () => {
      const images = await ok(daemon, ["images"]);
      assert.match(images, /busybox\s+latest/);
      await ok(daemon, ["tag", "busybox", "mybox:1"]);
      assert.match(await ok(daemon, ["images"]), /mybox\s+1/);
      const rmi = await ok(daemon, ["rmi", "mybox:1"]);
      assert.match(rmi, /Untagged: mybox:1/);
      const quiet = await ok(daemon, ["images", "-q"]);
      assert.match(quiet, /^[0-9a-f]{12}\n$/);
      assert.match(await ok(daemon, ["images", "--digests"]), /DIGEST/);
    });

    await t.step("load from stdin and import a rootfs tarball", async () => {
      const oci = (await busyboxTarball()).replace(/busybox\.tar$/, "busybox-oci.tar");
      const loaded = await daemon.pouch(["load"], { stdin: await Deno.readFile(oci) });
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.match(loaded.stdout, /Loaded image/);

      const rootfs = await Deno.makeTempDir();
      try {
        await Deno.mkdir(`${rootfs}/bin`);
        await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
        await Deno.symlink("busybox", `${rootfs}/bin/sh`);
        const tar = await new Deno.Command("tar", {
          args: ["-C", rootfs, "-cf", "-", "."],
          stdout: "piped",
        }).output();
        const imported = await daemon.pouch(
          ["import", "-c", 'CMD ["/bin/sh", "-c", "echo imported"]', "-", "imported:1"],
          { stdin: tar.stdout },
        );
        assert.equal(imported.code, 0, imported.stderr);
        assert.match(imported.stdout, /sha256:[0-9a-f]{64}/);
      } finally {
        await Deno.remove(rootfs, { recursive: true });
      }
      assert.equal(await ok(daemon, ["run", "--rm", "imported:1"]), "imported\n");
      await ok(daemon, ["rmi", "imported:1"]);
      const rmiInUse = await daemon.pouch(["create", "--name", "user", "busybox", "true"]);
      assert.equal(rmiInUse.code, 0, rmiInUse.stderr);
      const refused = await daemon.pouch(["rmi", "busybox"]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /container [0-9a-f]{12} is using/);
      await ok(daemon, ["rm", "user"]);
    });
  });
});

Deno.test("bad input gets clear errors and leaves nothing behind", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    const count = async () =>
      JSON.parse((await daemon.api("GET", "/containers/json?all=1")).body).length;

    await t.step("unknown container: 404 and exit 1", async () => {
      const api = await daemon.api("GET", "/containers/nope/json");
      assert.equal(api.status, 404);
      assert.equal(JSON.parse(api.body).message, "No such container: nope");
      const cli = await daemon.pouch(["stop", "nope"]);
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /No such container: nope/);
    });

    await t.step("unknown image: 404, run exits 125", async () => {
      const api = await daemon.api("POST", "/containers/create", { Image: "nosuchimage" });
      assert.equal(api.status, 404);
      assert.match(JSON.parse(api.body).message, /No such image: nosuchimage/);
      const cli = await daemon.pouch(["run", "nosuchimage"]);
      assert.equal(cli.code, 125);
      assert.equal(await count(), 0);
    });

    await t.step("duplicate and invalid names: 409 and 400", async () => {
      await ok(daemon, ["create", "--name", "dup", "busybox", "true"]);
      const dup = await daemon.pouch(["create", "--name", "dup", "busybox", "true"]);
      assert.equal(dup.code, 125);
      assert.match(dup.stderr, /already in use/);
      const api = await daemon.api("POST", "/containers/create?name=dup", { Image: "busybox" });
      assert.equal(api.status, 409);
      const invalid = await daemon.api("POST", "/containers/create?name=-bad!", {
        Image: "busybox",
      });
      assert.equal(invalid.status, 400);
      assert.match(JSON.parse(invalid.body).message, /Invalid container name/);
      await ok(daemon, ["rm", "dup"]);
      assert.equal(await count(), 0);
    });

    await t.step("malformed JSON and absurd limits: 400", async () => {
      const bad = await daemon.api("POST", "/containers/create", "{not json");
      assert.equal(bad.status, 400);
      for (
        const hostConfig of [{ Memory: -1 }, { Memory: 1024 }, { NanoCpus: 1e15 }, {
          CpusetCpus: "x-y",
        }, { PidsLimit: -5, CpuShares: -1 }]
      ) {
        const api = await daemon.api("POST", "/containers/create", {
          Image: "busybox",
          HostConfig: hostConfig,
        });
        assert.equal(api.status, 400, `${JSON.stringify(hostConfig)}: ${api.body}`);
      }
      const cli = await daemon.pouch(["run", "-m", "abc", "busybox", "true"]);
      assert.equal(cli.code, 125);
      assert.equal(await count(), 0);
    });

    await t.step("an image reference that does not parse: 400", async () => {
      const api = await daemon.api("POST", "/containers/create", { Image: "UPPER/Case::x" });
      assert.equal(api.status, 400, api.body);
    });

    await t.step("unknown flag: exit 125 for run, 1 for others", async () => {
      assert.equal((await daemon.pouch(["run", "--bogus", "busybox"])).code, 125);
      const ps = await daemon.pouch(["ps", "--bogus"]);
      assert.notEqual(ps.code, 0);
      assert.match(ps.stderr, /unknown flag/);
    });

    await t.step("state conflicts: stop of a stopped container is 304, kill is 409", async () => {
      await ok(daemon, ["create", "--name", "idle", "busybox", "true"]);
      assert.equal((await daemon.api("POST", "/containers/idle/stop")).status, 304);
      assert.equal((await daemon.api("POST", "/containers/idle/kill")).status, 409);
      await ok(daemon, ["run", "-d", "--name", "busy", "busybox", "sleep", "100"]);
      const rm = await daemon.api("DELETE", "/containers/busy");
      assert.equal(rm.status, 409);
      assert.equal((await daemon.api("POST", "/containers/busy/start")).status, 304);
      assert.equal((await daemon.api("POST", "/containers/busy/kill?signal=NOPE")).status, 400);
      await ok(daemon, ["rm", "-f", "idle", "busy"]);
    });

    await t.step("an upgraded request with a huge body is refused with 413", async () => {
      const conn = await Deno.connect({ transport: "unix", path: daemon.socket });
      try {
        await conn.write(new TextEncoder().encode(
          "POST /exec/x/start HTTP/1.1\r\nHost: pouch\r\nConnection: Upgrade\r\n" +
            "Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n",
        ));
        const buffer = new Uint8Array(4096);
        const n = await conn.read(buffer);
        assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 413 /);
      } finally {
        conn.close();
      }
    });

    await t.step("unknown paths are JSON 404s and the daemon keeps serving", async () => {
      const api = await daemon.api("GET", "/v1.41/nothing/here");
      assert.equal(api.status, 404);
      assert.ok(JSON.parse(api.body).message);
      assert.equal((await daemon.api("GET", "/v1.41/_ping")).status, 200);
    });

    await t.step("nothing is left in containerd", async () => {
      assert.equal(await count(), 0);
      const snapshots = await new Deno.Command("ctr", {
        args: ["-a", `${daemon.home}/containerd/containerd.sock`, "snapshots", "ls"],
        stdout: "piped",
      }).output();
      const active = new TextDecoder().decode(snapshots.stdout).split("\n")
        .filter((line) => /Active/.test(line));
      assert.deepEqual(active, []);
    });
  });
});

Deno.test("daemon restart keeps containers; a crash is cleaned up", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    const ctr = (...args: string[]) =>
      new Deno.Command("ctr", {
        args: ["-a", `${daemon.home}/containerd/containerd.sock`, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();

    await t.step("a running container survives a daemon restart and is re-adopted", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "keeper",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done",
      ]);
      await ok(daemon, ["run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 2; exit 7"]);
      const pid = (await inspect(daemon, "keeper")).State.Pid;
      await daemon.stop();
      // While the daemon is down the container keeps running and "short" exits.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.ok(await Deno.stat(`/proc/${pid}`));
      await daemon.start();
      const keeper = await inspect(daemon, "keeper");
      assert.equal(keeper.State.Status, "running");
      assert.equal(keeper.State.Pid, pid);
      await waitFor(async () => (await inspect(daemon, "short")).State.Status === "exited");
      assert.equal((await inspect(daemon, "short")).State.ExitCode, 7);
      // Output written while the daemon was down reaches the log once it reads again.
      const before = (await ok(daemon, ["logs", "keeper"])).split("\n").length;
      await waitFor(async () =>
        (await ok(daemon, ["logs", "keeper"])).split("\n").length > before + 2
      );
      await ok(daemon, ["stop", "-t", "1", "keeper"]);
      assert.equal((await inspect(daemon, "keeper")).State.Status, "exited");
      await ok(daemon, ["rm", "keeper", "short"]);
    });

    await t.step("containerd is restarted when it dies, and exits are still seen", async () => {
      const containerdPid = async () => {
        for await (const entry of Deno.readDir("/proc")) {
          if (!/^\d+$/.test(entry.name)) continue;
          const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
          if (/containerd\0--config\0/.test(cmdline) && cmdline.includes(daemon.home)) {
            return Number(entry.name);
          }
        }
        return 0;
      };
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "sleep 3; exit 5",
      ]);
      const first = await containerdPid();
      assert.ok(first > 0);
      Deno.kill(first, "SIGKILL");
      await waitFor(async () => {
        const next = await containerdPid();
        return next > 0 && next !== first;
      }, { timeoutMs: 20_000 });
      await waitFor(
        async () => (await daemon.pouch(["run", "--rm", "busybox", "true"])).code === 0,
        {
          timeoutMs: 20_000,
        },
      );
      await waitFor(async () => (await inspect(daemon, "survivor")).State.Status === "exited", {
        timeoutMs: 20_000,
      });
      assert.equal((await inspect(daemon, "survivor")).State.ExitCode, 5);
      await ok(daemon, ["rm", "survivor"]);
    });

    await t.step("after a crash, orphans in containerd are removed", async () => {
      await daemon.crash();
      const created = await ctr(
        "containers",
        "create",
        "--label",
        "io.pouch.managed=true",
        "docker.io/library/busybox:latest",
        "orphan-ctr",
        "true",
      );
      assert.ok(created.success, new TextDecoder().decode(created.stderr));
      await daemon.start();
      const list = new TextDecoder().decode((await ctr("containers", "ls", "-q")).stdout);
      assert.doesNotMatch(list, /orphan-ctr/);
    });

    await t.step("a create cut short by a crash is undone at the next start", async () => {
      const layer = (await ok(daemon, [
        "image",
        "inspect",
        "-f",
        "{{index .RootFS.Layers 0}}",
        "busybox",
      ])).trim();
      await daemon.crash();
      const id = "e".repeat(64);
      const prepared = await ctr("snapshots", "prepare", id, layer);
      assert.ok(prepared.success, new TextDecoder().decode(prepared.stderr));
      {
        using db = new DatabaseSync(`${daemon.home}/meta.db`);
        db.prepare("INSERT INTO records (kind, id, version, data) VALUES (?, ?, 1, ?)").run(
          "container",
          id,
          JSON.stringify({
            id,
            name: "half",
            snapshotter: "overlayfs",
            snapshotKey: id,
            phase: "creating",
            state: { Status: "created" },
          }),
        );
        db.prepare("INSERT INTO names (name, id) VALUES (?, ?)").run("half", id);
      }
      await daemon.start();
      const snapshots = new TextDecoder().decode((await ctr("snapshots", "ls")).stdout);
      assert.doesNotMatch(snapshots, new RegExp(id));
      assert.equal((await daemon.api("GET", "/containers/half/json")).status, 404);
      // The name is free again.
      await ok(daemon, ["create", "--name", "half", "busybox", "true"]);
      await ok(daemon, ["rm", "half"]);
    });
  });
});

Deno.test("the Docker CLI works against pouch", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step("docker run --rm busybox echo hi prints hi", async () => {
      const run = await daemon.docker(["run", "--rm", "busybox", "echo", "hi"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "hi\n");
      const code = await daemon.docker(["run", "--rm", "busybox", "sh", "-c", "exit 4"]);
      assert.equal(code.code, 4, code.stderr);
    });

    await t.step("docker ps, logs, inspect, stop, rm -f, images", async () => {
      const run = await daemon.docker([
        "run",
        "-d",
        "--name",
        "dweb",
        "busybox",
        "sh",
        "-c",
        "echo ready; sleep 1000",
      ]);
      assert.equal(run.code, 0, run.stderr);
      const ps = await daemon.docker(["ps"]);
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /dweb/);
      await waitFor(async () => (await daemon.docker(["logs", "dweb"])).stdout === "ready\n");
      const insp = await daemon.docker(["inspect", "-f", "{{.State.Status}}", "dweb"]);
      assert.equal(insp.stdout.trim(), "running", insp.stderr);
      const stop = await daemon.docker(["stop", "-t", "1", "dweb"]);
      assert.equal(stop.code, 0, stop.stderr);
      const psa = await daemon.docker(["ps", "-a"]);
      assert.match(psa.stdout, /Exited \(137\)/);
      const rm = await daemon.docker(["rm", "-f", "dweb"]);
      assert.equal(rm.code, 0, rm.stderr);
      const images = await daemon.docker(["images"]);
      assert.equal(images.code, 0, images.stderr);
      assert.match(images.stdout, /busybox\s+latest/);
      const version = await daemon.docker(["version"]);
      assert.equal(version.code, 0, version.stderr);
      const info = await daemon.docker(["info"]);
      assert.equal(info.code, 0, info.stderr);
    });
  });
});
