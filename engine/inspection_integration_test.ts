/**
 * End-to-end tests of cp, top, stats, events, port and diff against a real daemon, through
 * pouch's CLI, the Docker CLI and the raw API.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";
import { tarStream } from "./tar.ts";

async function withDaemon(fn: (daemon: TestDaemon) => Promise<void>): Promise<void> {
  await withBusyboxDaemon(async (daemon) => {
    await fn(daemon);
    // No cp mount may outlive its request.
    const mounts = await Deno.readTextFile("/proc/self/mountinfo");
    assert.ok(!mounts.includes(`${daemon.home}/tmp/cp-`), "a cp mount was left behind");
  });
}

async function sh(daemon: TestDaemon, name: string, script: string): Promise<void> {
  await ok(daemon, ["run", "-d", "--name", name, "busybox", "sh", "-c", script]);
}

Deno.test("cp copies both ways on running and stopped containers, and never escapes", async (t) => {
  await withDaemon(async (daemon) => {
    const local = await Deno.makeTempDir({ dir: daemon.dir, prefix: "local-" });
    await sh(
      daemon,
      "cpweb",
      "mkdir -p /data/sub && echo hello > /data/sub/f && chmod 0751 /data/sub/f && " +
        "ln -s f /data/sub/link && ln -s / /data/toroot && ln -s ../../../.. /data/up && " +
        "echo inside > /etc/marker && sleep 1000",
    );
    await t.step("container to host: a directory, its modes and symlinks", async () => {
      await ok(daemon, ["cp", "cpweb:/data/sub", `${local}/sub`]);
      assert.equal(await Deno.readTextFile(`${local}/sub/f`), "hello\n");
      assert.equal((await Deno.stat(`${local}/sub/f`)).mode! & 0o777, 0o751);
      assert.equal(await Deno.readLink(`${local}/sub/link`), "f");
      // `dir/.` copies the contents into an existing directory.
      await Deno.mkdir(`${local}/contents`);
      await ok(daemon, ["cp", "cpweb:/data/sub/.", `${local}/contents`]);
      assert.equal(await Deno.readTextFile(`${local}/contents/f`), "hello\n");
      // A file into an existing directory keeps its name.
      await ok(daemon, ["cp", "cpweb:/etc/marker", local]);
      assert.equal(await Deno.readTextFile(`${local}/marker`), "inside\n");
    });

    await t.step("host to container: a directory and a renamed file", async () => {
      await Deno.mkdir(`${local}/up/deep`, { recursive: true });
      await Deno.writeTextFile(`${local}/up/deep/x.sh`, "echo x\n");
      await Deno.chmod(`${local}/up/deep/x.sh`, 0o700);
      await Deno.symlink("deep/x.sh", `${local}/up/ln`);
      await ok(daemon, ["cp", `${local}/up`, "cpweb:/tmp/"]);
      await ok(daemon, ["cp", `${local}/marker`, "cpweb:/tmp/renamed"]);
      const check = await daemon.pouch([
        "exec",
        "cpweb",
        "sh",
        "-c",
        "stat -c %a /tmp/up/deep/x.sh; readlink /tmp/up/ln; cat /tmp/renamed",
      ]);
      if (check.code === 0) assert.equal(check.stdout, "700\ndeep/x.sh\ninside\n");
      const back = await Deno.makeTempDir({ dir: daemon.dir });
      await ok(daemon, ["cp", "cpweb:/tmp/up", `${back}/up`]);
      assert.equal(await Deno.readTextFile(`${back}/up/deep/x.sh`), "echo x\n");
      assert.equal((await Deno.stat(`${back}/up/deep/x.sh`)).mode! & 0o777, 0o700);
      assert.equal(await Deno.readLink(`${back}/up/ln`), "deep/x.sh");
    });

    await t.step("escapes through .. and symlinks stay inside the container", async () => {
      const hostPasswd = await Deno.readTextFile("/etc/passwd");
      for (const path of ["/../../etc/passwd", "/data/toroot/etc/passwd", "/data/up/etc/passwd"]) {
        const target = `${local}/passwd-${Math.random()}`;
        await ok(daemon, ["cp", `cpweb:${path}`, target]);
        const copied = await Deno.readTextFile(target);
        assert.notEqual(copied, hostPasswd, path);
        assert.match(copied, /^root:/, path);
      }
      // Writing through the container's `up -> ../../../..` is refused by the API.
      const before = await Deno.readDir(daemon.dir)[Symbol.asyncIterator]().next();
      assert.ok(before);
      const marker = `pouch-escape-${crypto.randomUUID()}`;
      const body = tarStream([{ header: { name: `up/tmp/${marker}` }, body: "x" }]);
      const escaped = await put(daemon, "cpweb", "/data", body);
      assert.equal(escaped.status, 400, escaped.body);
      const dotdot = await put(
        daemon,
        "cpweb",
        "/tmp",
        tarStream([{ header: { name: `../../../tmp/${marker}` }, body: "x" }]),
      );
      assert.equal(dotdot.status, 400, dotdot.body);
      assert.match(dotdot.body, /outside/);
      await assert.rejects(() => Deno.lstat(`/tmp/${marker}`), Deno.errors.NotFound);
    });

    await t.step("missing paths are 404 with Docker's message", async () => {
      const missing = await daemon.pouch(["cp", "cpweb:/nope", local]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /Could not find the file \/nope in container cpweb/);
      const head = await daemon.api("HEAD", "/containers/cpweb/archive?path=/nope");
      assert.equal(head.status, 404);
      const stat = await fetchStat(daemon, "cpweb", "/data/sub/link");
      assert.equal(stat.name, "link");
      assert.equal(stat.linkTarget, "/data/sub/f");
    });

    await t.step("a stopped container: both ways, mounts undone", async () => {
      await ok(daemon, ["stop", "-t", "0", "cpweb"]);
      await ok(daemon, ["cp", `${local}/marker`, "cpweb:/tmp/while-stopped"]);
      const back = await Deno.makeTempDir({ dir: daemon.dir });
      await ok(daemon, ["cp", "cpweb:/tmp/while-stopped", `${back}/f`]);
      assert.equal(await Deno.readTextFile(`${back}/f`), "inside\n");
      await ok(daemon, ["cp", "cpweb:/data/sub", `${back}/sub`]);
      assert.equal(await Deno.readLink(`${back}/sub/link`), "f");
      const mounts = await Deno.readTextFile("/proc/self/mountinfo");
      assert.ok(!mounts.includes(`${daemon.home}/tmp/cp-`));
    });

    await t.step("docker cp works against pouch", async () => {
      const back = await Deno.makeTempDir({ dir: daemon.dir });
      const out = await daemon.docker(["cp", "cpweb:/data/sub", `${back}/sub`]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(await Deno.readTextFile(`${back}/sub/f`), "hello\n");
      const into = await daemon.docker(["cp", `${local}/marker`, "cpweb:/tmp/from-docker"]);
      assert.equal(into.code, 0, into.stderr);
      await ok(daemon, ["cp", "cpweb:/tmp/from-docker", `${back}/fd`]);
      assert.equal(await Deno.readTextFile(`${back}/fd`), "inside\n");
    });
  });
});

async function put(
  daemon: TestDaemon,
  name: string,
  path: string,
  body: ReadableStream<Uint8Array>,
): Promise<{ status: number; body: string }> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: daemon.socket } });
  try {
    const res = await fetch(
      `http://pouch/containers/${name}/archive?path=${encodeURIComponent(path)}`,
      { method: "PUT", body: new Uint8Array(await new Response(body).arrayBuffer()), client },
    );
    return { status: res.status, body: await res.text() };
  } finally {
    client.close();
  }
}

async function fetchStat(daemon: TestDaemon, name: string, path: string) {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: daemon.socket } });
  try {
    const res = await fetch(
      `http://pouch/containers/${name}/archive?path=${encodeURIComponent(path)}`,
      { method: "HEAD", client },
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    return JSON.parse(atob(res.headers.get("X-Docker-Container-Path-Stat") ?? ""));
  } finally {
    client.close();
  }
}

Deno.test("top, stats, port and diff", async (t) => {
  await withDaemon(async (daemon) => {
    await sh(daemon, "mon", "rm /bin/true; touch /etc/added; echo x >> /etc/passwd; sleep 1000");
    await t.step("top lists the container's process", async () => {
      const top = await ok(daemon, ["top", "mon"]);
      assert.match(top, /PID/);
      assert.match(top, /sleep 1000/);
      const custom = await ok(daemon, ["top", "mon", "-o", "pid,comm"]);
      assert.match(custom, /^PID\s+COMMAND/);
      const docker = await daemon.docker(["top", "mon"]);
      assert.equal(docker.code, 0, docker.stderr);
      assert.match(docker.stdout, /sleep 1000/);
    });

    await t.step("stats --no-stream shows the memory limit and pids", async () => {
      await ok(daemon, ["run", "-d", "--name", "limited", "-m", "64m", "busybox", "sleep", "1000"]);
      const out = await ok(daemon, ["stats", "--no-stream", "limited"]);
      assert.match(out, /CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %/);
      assert.match(
        out,
        /limited\s+\d+\.\d\d%\s+\S+ \/ 64MiB\s+\d+\.\d\d%\s+\S+ \/ \S+\s+\S+ \/ \S+\s+1\n/,
      );
      const json = JSON.parse(
        (await daemon.api("GET", "/containers/limited/stats?stream=false")).body,
      );
      assert.equal(json.memory_stats.limit, 64 * 1024 * 1024);
      assert.equal(json.pids_stats.current, 1);
      assert.ok(json.cpu_stats.system_cpu_usage > json.precpu_stats.system_cpu_usage);
      const docker = await daemon.docker(["stats", "--no-stream", "limited"]);
      assert.equal(docker.code, 0, docker.stderr);
      assert.match(docker.stdout, /64MiB/);
    });

    await t.step("port: nothing is published", async () => {
      assert.equal(await ok(daemon, ["port", "mon"]), "");
      const one = await daemon.pouch(["port", "mon", "80"]);
      assert.equal(one.code, 1);
      assert.match(one.stderr, /No public port '80' published for mon/);
    });

    await t.step("diff lists added, changed and deleted files", async () => {
      const diff = await ok(daemon, ["diff", "mon"]);
      assert.match(diff, /^A \/etc\/added$/m);
      assert.match(diff, /^C \/etc\/passwd$/m);
      assert.match(diff, /^C \/etc$/m);
      assert.match(diff, /^D \/bin\/true$/m);
      const docker = await daemon.docker(["diff", "mon"]);
      assert.equal(docker.code, 0, docker.stderr);
      assert.match(docker.stdout, /A \/etc\/added/);
    });

    await t.step("top of a stopped container is a conflict", async () => {
      await ok(daemon, ["stop", "-t", "0", "mon"]);
      const top = await daemon.pouch(["top", "mon"]);
      assert.equal(top.code, 1);
      assert.match(top.stderr, /is not running/);
    });
  });
});

Deno.test("events: a scripted sequence, since/until and filters", async (t) => {
  await withDaemon(async (daemon) => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    const run = await daemon.pouch(["run", "--name", "ev", "busybox", "sh", "-c", "exit 3"]);
    assert.equal(run.code, 3, run.stderr);
    await ok(daemon, ["rm", "ev"]);
    await ok(daemon, ["tag", "busybox", "busybox:evtag"]);
    await ok(daemon, ["run", "-d", "--name", "evexec", "busybox", "sleep", "100"]);
    assert.equal((await daemon.pouch(["exec", "evexec", "sh", "-c", "exit 4"])).code, 4);
    await ok(daemon, ["rm", "-f", "evexec"]);
    const until = String(Math.ceil(Date.now() / 1000) + 1);

    await t.step("pouch events replays what happened", async () => {
      const out = await ok(daemon, [
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "type=container",
      ]);
      const actions = out.trim().split("\n").map((line) => line.split(" ")[2]);
      for (const action of ["create", "attach", "start", "die", "destroy"]) {
        assert.ok(actions.includes(action), `${action} in ${out}`);
      }
      assert.ok(actions.indexOf("create") < actions.indexOf("start"));
      assert.ok(actions.indexOf("die") < actions.indexOf("destroy"));
      assert.match(out, /container die [0-9a-f]{64} \(exitCode=3, image=busybox, name=ev\)/);
      assert.match(out, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z container create/m);
    });

    await t.step("filters by event and image; JSON format", async () => {
      const out = await ok(daemon, [
        "events",
        "--since",
        since,
        "--until",
        until,
        "-f",
        "event=die",
        "-f",
        "container=ev",
        "--format",
        "{{json .}}",
      ]);
      const lines = out.trim().split("\n").map((line) => JSON.parse(line));
      assert.equal(lines.length, 1);
      assert.equal(lines[0].Actor.Attributes.exitCode, "3");
      assert.equal(lines[0].status, "die");
      const image = await ok(daemon, [
        "events",
        "--since",
        since,
        "--until",
        until,
        "-f",
        "type=image",
      ]);
      assert.match(image, /image tag busybox \(name=busybox:evtag\)/);
      const execs = await ok(daemon, [
        "events",
        "--since",
        since,
        "--until",
        until,
        "-f",
        "container=evexec",
        "-f",
        "event=exec_die",
      ]);
      assert.match(execs, /container exec_die [0-9a-f]{64} \(execID=[0-9a-f]{64}, exitCode=4,/);
    });

    await t.step("docker events --since --until", async () => {
      const out = await daemon.docker([
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "event=start",
      ]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /container start [0-9a-f]{64} \(image=busybox, name=ev\)/);
    });

    await t.step("a bad filter is a 400", async () => {
      const bad = await daemon.api("GET", `/events?filters=${encodeURIComponent('{"x":["y"]}')}`);
      assert.equal(bad.status, 400);
    });
  });
});
