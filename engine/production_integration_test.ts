/**
 * Running pouch in production: the systemd unit, readiness and reload notifications on
 * `$NOTIFY_SOCKET`, the API socket's mode and group, one daemon per home, graceful shutdown with
 * requests in flight, config reload on SIGHUP, `/metrics`, `info`, and other OCI runtimes.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  importBusyboxVariant,
  inspectContainer as inspect,
  pouchOk as ok,
  startDaemon,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { skopeoPush, startRegistry } from "../testdata/registry.ts";
import { parseMetrics, type Sample } from "./metrics.ts";
import { NotifyListener } from "./notify.ts";
import { waitFor } from "./testing.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const decoder = new TextDecoder();

Deno.test("contrib/pouch.service passes systemd-analyze verify", async (t) => {
  const probe = await new Deno.Command("systemd-analyze", { args: ["--version"] }).output()
    .catch(() => undefined);
  if (!probe?.success) {
    // .ci/setup installs systemd; a host without it cannot check the unit.
    await t.step({ name: "systemd-analyze is not installed: skipped", ignore: true, fn() {} });
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "pouch-unit-" });
  try {
    // verify checks that ExecStart exists: point it at an executable that does.
    const unit = await Deno.readTextFile(`${root}contrib/pouch.service`);
    assert.match(unit, /^Type=notify$/m);
    assert.match(unit, /^NotifyAccess=main$/m);
    assert.match(unit, /^Delegate=yes$/m);
    assert.match(unit, /^KillMode=process$/m);
    await Deno.writeTextFile(
      `${dir}/pouch.service`,
      unit.replaceAll("/usr/local/bin/pouch", Deno.execPath()),
    );
    const result = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${dir}/pouch.service`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = decoder.decode(result.stdout) + decoder.decode(result.stderr);
    // verify exits 0 on unknown or malformed settings too, and only warns: any output is a flaw.
    assert.equal(result.code, 0, output);
    assert.equal(output.trim(), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The first group of /etc/group other than root's, for the socket group check. */
async function someGroup(): Promise<{ name: string; gid: number }> {
  for (const line of (await Deno.readTextFile("/etc/group")).split("\n")) {
    const [name, , gid] = line.split(":");
    if (name && gid && Number(gid) > 0) return { name, gid: Number(gid) };
  }
  throw new Error("no group besides root in /etc/group");
}

Deno.test("systemd notify, socket group, one daemon per home, SIGHUP reload", async (t) => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-notify-it-" });
  const notify = new NotifyListener(`${dir}/notify.sock`);
  const extra = `${dir}/api.sock`;
  const group = await someGroup();
  // What arrived on the notify socket, and whether the API answered when READY did.
  const messages: string[] = [];
  let apiAnsweredAtReady: boolean | undefined;
  let polling = true;
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: extra } });
  const poller = (async () => {
    while (polling) {
      for (const message of notify.drain()) {
        messages.push(message);
        if (message.includes("READY=1") && apiAnsweredAtReady === undefined) {
          apiAnsweredAtReady = await fetch("http://pouch/_ping", { client })
            .then(async (r) => (await r.text()) === "OK", () => false);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  try {
    await using daemon = await startDaemon({
      args: ["-l", `unix://${extra}`, "--group", group.name],
      env: { NOTIFY_SOCKET: notify.path },
    });

    await t.step("READY=1 with MAINPID and STATUS arrives once the API answers", async () => {
      await waitFor(() => apiAnsweredAtReady !== undefined, { message: "no READY=1" });
      assert.equal(apiAnsweredAtReady, true);
      const ready = messages.find((m) => m.includes("READY=1"))!;
      assert.match(ready, new RegExp(`^MAINPID=${daemon.pid}$`, "m"));
      assert.match(ready, /^STATUS=serving$/m);
      assert.equal(messages.filter((m) => m.includes("READY=1")).length, 1);
    });

    await t.step("the API socket is mode 0660 and owned by --group", async () => {
      for (const path of [daemon.socket, extra]) {
        const info = await Deno.stat(path);
        assert.equal(info.mode! & 0o777, 0o660, path);
        assert.equal(info.gid, group.gid, path);
      }
    });

    await t.step("a second daemon on the same home refuses to start", async () => {
      const second = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${root}main.ts`,
          "daemon",
          "--home-dir",
          daemon.home,
          "-l",
          `unix://${dir}/second.sock`,
          "--pidfile",
          `${dir}/second.pid`,
          "--config-file",
          `${daemon.dir}/config.json`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = decoder.decode(second.stderr);
      assert.equal(second.code, 1, stderr);
      assert.match(
        stderr,
        new RegExp(`another pouch daemon \\(pid ${daemon.pid}\\) is using ${daemon.home}`),
      );
      // It stopped before serving or touching the first daemon's files.
      assert.equal(await Deno.stat(`${dir}/second.sock`).then(() => true, () => false), false);
      assert.equal((await daemon.api("GET", "/_ping")).body, "OK");
    });

    await t.step("SIGHUP reloads mirrors and insecure registries; info shows them", async () => {
      const before = messages.length;
      await Deno.writeTextFile(
        `${daemon.dir}/config.json`,
        JSON.stringify({
          "registry-mirrors": {
            "docker.io": ["https://hub-mirror.example"],
            "127.0.0.1:5999": ["http://127.0.0.1:5998"],
          },
          "insecure-registries": ["registry.example:5000"],
          // Needs a restart: named in a warning, not applied.
          "mtu": 1400,
        }),
      );
      Deno.kill(daemon.pid, "SIGHUP");
      await waitFor(async () => (await daemon.log()).includes("config reloaded"));
      const info = JSON.parse((await daemon.api("GET", "/info")).body);
      assert.deepEqual(info.RegistryConfig.Mirrors, ["https://hub-mirror.example/"]);
      assert.deepEqual(info.RegistryConfig.IndexConfigs["127.0.0.1:5999"].Mirrors, [
        "http://127.0.0.1:5998/",
      ]);
      assert.equal(info.RegistryConfig.IndexConfigs["registry.example:5000"].Secure, false);
      const text = await ok(daemon, ["info"]);
      assert.match(text, /Registry Mirrors:\n {2}https:\/\/hub-mirror\.example\/\n/);
      assert.match(text, /Insecure Registries:\n( {2}.*\n)* {2}registry\.example:5000\n/);
      assert.match(await daemon.log(), /config changes that need a daemon restart.*keys=mtu/);
      await waitFor(() => messages.slice(before).some((m) => m.includes("READY=1")));
      const reload = messages.slice(before);
      assert.match(reload[0]!, /^RELOADING=1$/m);
      assert.match(reload.at(-1)!, /^READY=1$/m);
    });

    await t.step("a config that does not parse changes nothing", async () => {
      await Deno.writeTextFile(`${daemon.dir}/config.json`, "{not json");
      Deno.kill(daemon.pid, "SIGHUP");
      await waitFor(async () => (await daemon.log()).includes("config reload failed"));
      const info = JSON.parse((await daemon.api("GET", "/info")).body);
      assert.deepEqual(info.RegistryConfig.Mirrors, ["https://hub-mirror.example/"]);
    });

    await t.step("SIGTERM sends STOPPING=1", async () => {
      await Deno.writeTextFile(`${daemon.dir}/config.json`, "{}");
      await daemon.stop();
      await waitFor(() => messages.some((m) => m.includes("STOPPING=1")));
    });
  } finally {
    polling = false;
    await poller;
    client.close();
    notify.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with --enable-cri, READY=1 waits for the CRI socket too", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-notify-cri-" });
  const notify = new NotifyListener(`${dir}/notify.sock`);
  const cri = `${dir}/cri.sock`;
  let criAtReady: boolean | undefined;
  let polling = true;
  const poller = (async () => {
    while (polling && criAtReady === undefined) {
      if (notify.drain().some((m) => m.includes("READY=1"))) {
        criAtReady = (await Deno.stat(cri).catch(() => undefined))?.isSocket === true;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  try {
    await using _daemon = await startDaemon({
      args: ["--enable-cri", "--listen-cri", `unix://${cri}`, "--stream-server-port", "0"],
      env: { NOTIFY_SOCKET: notify.path },
    });
    await waitFor(() => criAtReady !== undefined, { message: "no READY=1" });
    assert.equal(criAtReady, true);
  } finally {
    polling = false;
    await poller;
    notify.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the API socket falls back to root's group when --group does not exist", async () => {
  await using daemon = await startDaemon({ args: ["--group", "pouch-no-such-group"] });
  assert.equal((await Deno.stat(daemon.socket)).gid, 0);
  assert.match(await daemon.log(), /WARN socket group not found.*group=pouch-no-such-group/);
});

Deno.test("SIGTERM lets API calls in flight finish and leaves containers running", async () => {
  await withBusyboxDaemon(async (daemon) => {
    await ok(daemon, ["run", "-d", "--name", "keep", "busybox", "sleep", "1000"]);
    // pid 1 ignores SIGTERM: `stop -t 3` takes its whole 3 seconds, then kills.
    await ok(daemon, ["run", "-d", "--name", "slow", "busybox", "sleep", "1000"]);
    const keepPid = (await inspect(daemon, "keep")).State.Pid;
    const started = Date.now();
    const stopping = daemon.pouch(["stop", "-t", "3", "slow"]);
    // The stop must be in flight when SIGTERM comes: half a second into its 3 s grace period
    // (nothing observable marks that moment from outside).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const exited = daemon.stop();
    // Draining: no new request is served.
    await waitFor(async () => {
      const answer = await daemon.api("GET", "/_ping").catch(() => undefined);
      return answer === undefined || answer.status === 503;
    }, { timeoutMs: 2_000, message: "the daemon kept serving new requests after SIGTERM" });
    const stop = await stopping;
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stdout.trim(), "slow");
    await exited;
    assert.ok(Date.now() - started >= 3_000, "the daemon exited before the stop finished");
    assert.match(await daemon.log(), /waiting for API requests in flight/);

    await daemon.start();
    const keep = await inspect(daemon, "keep");
    assert.equal(keep.State.Status, "running");
    assert.equal(keep.State.Pid, keepPid);
    const slow = await inspect(daemon, "slow");
    assert.equal(slow.State.Status, "exited");
    assert.equal(slow.State.ExitCode, 137);
  });
});

function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  return samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  ).reduce((sum, s) => sum + s.value, 0);
}

Deno.test("GET /metrics, info's runtimes and a crun container", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step("/metrics counts containers, requests, containerd round trips", async () => {
      await ok(daemon, ["run", "-d", "--name", "m1", "busybox", "sleep", "1000"]);
      await ok(daemon, ["create", "--name", "m2", "busybox", "true"]);
      await daemon.api("GET", "/v1.41/containers/m1/json");
      await daemon.api("GET", "/containers/nope/json");
      const response = await daemon.api("GET", "/metrics");
      assert.equal(response.status, 200);
      const samples = parseMetrics(response.body);
      assert.equal(sampleValue(samples, "pouch_containers", { state: "running" }), 1);
      assert.equal(sampleValue(samples, "pouch_containers", { state: "created" }), 1);
      assert.equal(
        sampleValue(samples, "pouch_api_requests_total", {
          route: "/containers/:id/json",
          status: "200",
        }) >= 1,
        true,
      );
      assert.equal(
        sampleValue(samples, "pouch_api_requests_total", {
          route: "/containers/:id/json",
          status: "404",
        }),
        1,
      );
      assert.ok(
        sampleValue(samples, "pouch_api_request_duration_seconds_count", {
          route: "/containers/create",
        }) >= 1,
      );
      assert.ok(
        sampleValue(samples, "pouch_containerd_requests_total", {
          service: "Tasks",
          method: "Start",
        }) >= 1,
      );
      assert.equal(sampleValue(samples, "pouch_engine_info", { storage_driver: "overlayfs" }), 1);
      await ok(daemon, ["rm", "-f", "m1", "m2"]);
    });

    await t.step("pulls add their layer bytes", async () => {
      await using registry = await startRegistry();
      const image = `${registry.host}/metrics/busybox:1`;
      await skopeoPush(`docker-archive:${root}testdata/out/busybox.tar`, image);
      const before = sampleValue(
        parseMetrics((await daemon.api("GET", "/metrics")).body),
        "pouch_image_pull_bytes_total",
      );
      // busybox's layer is already here: pull it again only once it is gone.
      await ok(daemon, ["rmi", "busybox"]);
      await ok(daemon, ["pull", image]);
      const after = sampleValue(
        parseMetrics((await daemon.api("GET", "/metrics")).body),
        "pouch_image_pull_bytes_total",
      );
      assert.ok(after - before > 100_000, `pulled ${after - before} bytes`);
      await ok(daemon, ["tag", image, "busybox"]);
    });

    await t.step("info and docker info show the runtimes and the host", async () => {
      const info = JSON.parse((await daemon.api("GET", "/info")).body);
      assert.deepEqual(Object.keys(info.Runtimes).sort(), ["crun", "runc"]);
      assert.equal(info.Runtimes.crun.path, "/usr/bin/crun");
      assert.equal(info.DefaultRuntime, "runc");
      assert.equal(info.Driver, "overlayfs");
      assert.equal(info.CriEnabled, false);
      assert.ok(info.NCPU > 0 && info.MemTotal > 0);
      const text = await ok(daemon, ["info"]);
      assert.match(text, /Runtimes: (crun runc|runc crun)\n/);
      assert.match(text, /Default Runtime: runc\n/);
      assert.match(text, /Storage Driver: overlayfs\n/);
      assert.match(text, /CRI: disabled\n/);
      const docker = await daemon.docker(["info"]);
      assert.equal(docker.code, 0, docker.stderr);
      assert.match(docker.stdout, /Runtimes: (crun runc|runc crun)/);
      assert.match(docker.stdout, /Storage Driver: overlayfs/);
    });

    await t.step("--runtime crun runs, or fails with crun's own message and 125", async () => {
      const run = await daemon.pouch(["run", "--rm", "--runtime", "crun", "busybox", "echo", "hi"]);
      if (run.code === 0) {
        assert.equal(run.stdout, "hi\n");
      } else {
        // crun 1.8 refuses hybrid cgroup hosts such as this one.
        assert.equal(run.code, 125, run.stderr);
        assert.match(run.stderr, /OCI runtime create failed: cgroups in hybrid mode not supported/);
      }
    });
  }, { config: { runtimes: { crun: { path: "/usr/bin/crun" } } } });
});

Deno.test("system df reports sizes and system prune removes what nothing uses", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await ok(daemon, ["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    await ok(daemon, [
      "run",
      "--name",
      "down",
      "busybox",
      "sh",
      "-c",
      "head -c 200000 /dev/zero >/big",
    ]);
    const downId = (await inspect(daemon, "down")).Id;
    await ok(daemon, ["volume", "create", "idle"]);
    const volume = JSON.parse((await daemon.api("GET", "/volumes/idle")).body);
    await Deno.writeTextFile(`${volume.Mountpoint}/data`, "x".repeat(50_000));
    await ok(daemon, ["network", "create", "prunenet"]);
    await importBusyboxVariant(daemon, "unused:1", { version: "1", changes: [] });
    // Moving its only tag to another image leaves dang:1's first image dangling.
    await importBusyboxVariant(daemon, "dang:1", { version: "a", changes: [] });
    await ok(daemon, ["tag", "unused:1", "dang:1"]);

    await t.step("GET /system/df has Docker's shape with sizes", async () => {
      const df = JSON.parse((await daemon.api("GET", "/system/df")).body);
      assert.ok(df.LayersSize > 0);
      assert.equal(df.Images.length, 3);
      const busybox = df.Images.find((i: { RepoTags: string[] }) =>
        i.RepoTags.includes("busybox:latest")
      );
      assert.equal(busybox.Containers, 2);
      const down = df.Containers.find((c: { Names: string[] }) => c.Names[0] === "/down");
      assert.ok(down.SizeRw >= 200_000, `SizeRw ${down.SizeRw}`);
      assert.ok(down.SizeRootFs > down.SizeRw);
      const idle = df.Volumes.find((v: { Name: string }) => v.Name === "idle");
      assert.deepEqual(idle.UsageData, { RefCount: 0, Size: 50_000 });
      assert.deepEqual(df.BuildCache, []);
    });

    await t.step("pouch system df and docker system df print the table", async () => {
      const text = await ok(daemon, ["system", "df"]);
      const rows = text.trim().split("\n").map((l) => l.split(/ {2,}/));
      assert.deepEqual(rows[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
      assert.deepEqual(rows[1]!.slice(0, 3), ["Images", "3", "1"]);
      assert.deepEqual(rows[2]!.slice(0, 3), ["Containers", "2", "1"]);
      assert.match(rows[2]![4]!, /^2\d\d(\.\d+)?kB \(\d+%\)$/);
      assert.deepEqual(rows[3], ["Local Volumes", "1", "0", "50kB", "50kB (100%)"]);
      const docker = await daemon.docker(["system", "df"]);
      assert.equal(docker.code, 0, docker.stderr);
      assert.match(docker.stdout, /Local Volumes\s+1\s+0\s+50kB/);
    });

    await t.step("system prune asks first; anything but y cancels", async () => {
      for (const stdin of [undefined, "n\n"]) {
        const refused = await daemon.pouch(["system", "prune"], {
          stdin: stdin === undefined ? undefined : new TextEncoder().encode(stdin),
        });
        assert.equal(refused.code, 1);
        assert.match(refused.stdout, /WARNING! This will remove:\n {2}- all stopped containers\n/);
        assert.match(refused.stdout, /Are you sure you want to continue\? \[y\/N\] $/);
        assert.equal(refused.stderr, "system prune has been cancelled\n");
      }
      assert.equal((await inspect(daemon, "down")).State.Status, "exited");
    });

    await t.step(
      "system prune, confirmed: stopped containers, networks, dangling images",
      async () => {
        const pruned = await daemon.pouch(["system", "prune"], {
          stdin: new TextEncoder().encode("y\n"),
        });
        assert.equal(pruned.code, 0, pruned.stderr);
        const text = pruned.stdout;
        assert.match(text, new RegExp(`Deleted Containers:\n${downId}\n`));
        assert.match(text, /Deleted Networks:\nprunenet\n/);
        assert.match(text, /Deleted Images:\n(deleted: sha256:[0-9a-f]{64}\n)+/);
        assert.match(text, /Total reclaimed space: [\d.]+[kM]?B\n$/);
        assert.equal((await daemon.api("GET", "/containers/down/json")).status, 404);
        assert.equal((await inspect(daemon, "up")).State.Status, "running");
        assert.equal((await daemon.api("GET", "/volumes/idle")).status, 200);
        const images = await ok(daemon, ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert.deepEqual(images.trim().split("\n").sort(), [
          "busybox:latest",
          "dang:1",
          "unused:1",
        ]);
      },
    );

    await t.step("system prune -a --volumes -f: every unused image and volume", async () => {
      const text = await ok(daemon, ["system", "prune", "-a", "--volumes", "-f"]);
      assert.match(text, /Deleted Volumes:\nidle\n/);
      assert.match(text, /untagged: unused:1\n/);
      assert.match(text, /untagged: dang:1\n/);
      const images = await ok(daemon, ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
      assert.equal(images.trim(), "busybox:latest");
      assert.equal((await daemon.api("GET", "/volumes/idle")).status, 404);
      assert.equal((await inspect(daemon, "up")).State.Status, "running");
    });
  });
});
