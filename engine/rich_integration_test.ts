/**
 * Rich containers and OCI hooks against a real daemon, containerd and runc with the busybox
 * image (which has no libc: the injected init must be static).
 */
import assert from "node:assert/strict";
import {
  inspectContainer as inspect,
  pouchOk as ok,
  type TestDaemon,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

/** The state letter of every process in the container (`R`, `S`, `Z`, ...), by pid. */
async function processStates(daemon: TestDaemon, name: string): Promise<Map<number, string>> {
  const out = await ok(daemon, ["exec", name, "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"]);
  const states = new Map<number, string>();
  for (const line of out.split("\n")) {
    const match = /^(\d+) \(.*\) (\S)/.exec(line);
    if (match) states.set(Number(match[1]), match[2]!);
  }
  return states;
}

async function writeScript(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, 0o755);
}

async function lineCount(path: string): Promise<number> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((line) => line !== "").length;
}

Deno.test("rich containers: init as pid 1, reaping, signals, init scripts, hooks", async (t) => {
  // The daemon-wide hook writes here; the directory must exist before the daemon starts.
  const globalDir = await Deno.makeTempDir({ prefix: "pouch-rich-hooks-" });
  const globalHook = `${globalDir}/global.sh`;
  await writeScript(globalHook, `#!/bin/sh\ncat >> "$1"; echo >> "$1"\n`);
  try {
    await withBusyboxDaemon(async (daemon) => {
      const data = `${daemon.dir}/data`;
      await Deno.mkdir(data);

      await t.step("--rich: pid 1 is the static init and the command is its child", async () => {
        await ok(daemon, ["run", "-d", "--rich", "--name", "rich-pid1", "busybox", "sleep", "100"]);
        const cmdline = await ok(daemon, ["exec", "rich-pid1", "cat", "/proc/1/cmdline"]);
        assert.deepEqual(cmdline.split("\0").filter((a) => a !== ""), [
          "/.pouch/init",
          "-s",
          "-g",
          "--",
          "sleep",
          "100",
        ]);
        const children = await ok(daemon, [
          "exec",
          "rich-pid1",
          "sh",
          "-c",
          "for s in /proc/[0-9]*/stat; do cat $s; done 2>/dev/null",
        ]);
        const sleep = children.split("\n").find((line) => / \(sleep\) /.test(line));
        assert.ok(sleep, children);
        assert.equal(sleep.split(") ")[1]?.split(" ")[1], "1", `sleep's parent: ${sleep}`);
        // The init is mounted read-only.
        const write = await daemon.pouch([
          "exec",
          "rich-pid1",
          "sh",
          "-c",
          "echo x > /.pouch/init",
        ]);
        assert.notEqual(write.code, 0);
        const view = await inspect(daemon, "rich-pid1");
        assert.equal(view.Config.Rich, true);
        assert.equal(view.Path, "sleep");
        await ok(daemon, ["rm", "-f", "rich-pid1"]);
      });

      await t.step("orphaned zombies are reaped by the init, not without it", async () => {
        // The subshell exits at once, orphaning `sleep 0.2`; its new parent is pid 1.
        const orphan = "(sleep 0.2 &); exec sleep 100";
        await ok(daemon, ["run", "-d", "--name", "plain-zombie", "busybox", "sh", "-c", orphan]);
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--name",
          "rich-zombie",
          "busybox",
          "sh",
          "-c",
          orphan,
        ]);
        // Without an init, pid 1 (`sleep 100`) never waits: the orphan stays a zombie.
        await waitFor(
          async () => [...(await processStates(daemon, "plain-zombie")).values()].includes("Z"),
          { timeoutMs: 10_000, message: "no zombie in the plain container" },
        );
        const rich = await processStates(daemon, "rich-zombie");
        assert.ok(![...rich.values()].includes("Z"), `zombie in the rich container: ${[...rich]}`);
        await ok(daemon, ["rm", "-f", "plain-zombie", "rich-zombie"]);
      });

      await t.step("stop's SIGTERM reaches the command through the init", async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--name",
          "rich-trap",
          "busybox",
          "sh",
          "-c",
          "trap 'exit 42' TERM; while true; do sleep 0.1; done",
        ]);
        await ok(daemon, ["stop", "-t", "10", "rich-trap"]);
        assert.equal((await inspect(daemon, "rich-trap")).State.ExitCode, 42);
        // A command without a handler dies of SIGTERM, which it would ignore as pid 1.
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--name",
          "rich-sleep",
          "busybox",
          "sleep",
          "100",
        ]);
        const started = Date.now();
        await ok(daemon, ["stop", "-t", "10", "rich-sleep"]);
        assert.ok(Date.now() - started < 8000, "stop waited for the timeout");
        assert.equal((await inspect(daemon, "rich-sleep")).State.ExitCode, 143);
        await ok(daemon, ["rm", "rich-trap", "rich-sleep"]);
      });

      await t.step("--initscript runs before the command on every start", async () => {
        await writeScript(`${data}/init.sh`, `#!/bin/sh\necho started >> /data/starts\n`);
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--initscript",
          "/data/init.sh",
          "-v",
          `${data}:/data`,
          "--name",
          "rich-init",
          "busybox",
          "sh",
          "-c",
          "cat /data/starts > /data/seen; exec sleep 100",
        ]);
        assert.equal(await lineCount(`${data}/starts`), 1);
        // The script finished before the command started.
        await waitFor(async () => (await lineCount(`${data}/seen`)) === 1, { timeoutMs: 5000 });
        await ok(daemon, ["restart", "-t", "0", "rich-init"]);
        assert.equal(await lineCount(`${data}/starts`), 2);
        await ok(daemon, ["stop", "-t", "0", "rich-init"]);
        await ok(daemon, ["start", "rich-init"]);
        assert.equal(await lineCount(`${data}/starts`), 3);
        const view = await inspect(daemon, "rich-init");
        assert.equal(view.Config.InitScript, "/data/init.sh");
        assert.equal(view.Config.RichMode, undefined);
        await ok(daemon, ["rm", "-f", "rich-init"]);
      });

      await t.step("a failing init script fails run and start with its output", async () => {
        await writeScript(`${data}/fail.sh`, `#!/bin/sh\necho "database not ready" >&2\nexit 3\n`);
        const run = await daemon.pouch([
          "run",
          "-d",
          "--rich",
          "--initscript",
          "/data/fail.sh",
          "-v",
          `${data}:/data`,
          "--name",
          "rich-fail",
          "busybox",
          "sleep",
          "100",
        ]);
        assert.equal(run.code, 125, run.stderr);
        assert.match(run.stderr, /init script \/data\/fail\.sh failed with exit code 3/);
        assert.match(run.stderr, /database not ready/);
        const state = (await inspect(daemon, "rich-fail")).State;
        assert.notEqual(state.Status, "running");
        assert.equal(state.ExitCode, 3);
        assert.match(state.Error, /database not ready/);
        const start = await daemon.pouch(["start", "rich-fail"]);
        assert.notEqual(start.code, 0);
        assert.match(start.stderr, /database not ready/);
        // Fixed, it starts.
        await writeScript(`${data}/fail.sh`, `#!/bin/sh\nexit 0\n`);
        await ok(daemon, ["start", "rich-fail"]);
        assert.equal((await inspect(daemon, "rich-fail")).State.Status, "running");
        await ok(daemon, ["rm", "-f", "rich-fail"]);
      });

      await t.step("--initcmd runs a command line the same way", async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--initcmd",
          "echo cmd >> /data/cmds",
          "-v",
          `${data}:/data`,
          "--name",
          "rich-cmd",
          "busybox",
          "sleep",
          "100",
        ]);
        assert.equal(await lineCount(`${data}/cmds`), 1);
        await ok(daemon, ["restart", "-t", "0", "rich-cmd"]);
        assert.equal(await lineCount(`${data}/cmds`), 2);
        assert.equal((await inspect(daemon, "rich-cmd")).Config.InitCmd, "echo cmd >> /data/cmds");
        const failed = await daemon.pouch([
          "run",
          "--rich",
          "--initcmd",
          "echo nope; exit 5",
          "--name",
          "rich-cmd-fail",
          "busybox",
          "true",
        ]);
        assert.equal(failed.code, 125, failed.stderr);
        assert.match(failed.stderr, /init command failed with exit code 5: nope/);
        await ok(daemon, ["rm", "-f", "rich-cmd", "rich-cmd-fail"]);
      });

      await t.step("--initscript or --initcmd without --rich is refused (400)", async () => {
        const cli = await daemon.pouch(["create", "--initscript", "/x.sh", "busybox", "true"]);
        assert.equal(cli.code, 125);
        assert.match(cli.stderr, /--initscript needs a rich container: add --rich/);
        const api = await daemon.api("POST", "/containers/create", {
          Image: "busybox",
          Cmd: ["true"],
          InitCmd: "true",
        });
        assert.equal(api.status, 400, api.body);
        assert.match(api.body, /--initcmd needs a rich container/);
        const count = async () =>
          JSON.parse((await daemon.api("GET", "/containers/json?all=1")).body).length;
        const before = await count();
        const systemd = await daemon.api("POST", "/containers/create", {
          Image: "busybox",
          Cmd: ["true"],
          Rich: true,
          RichMode: "systemd",
        });
        // busybox has no systemd: a clear 400 naming the image, and no container left.
        assert.equal(systemd.status, 400, systemd.body);
        assert.match(systemd.body, /rich mode systemd runs systemd as pid 1, and image busybox/);
        assert.equal(await count(), before);
      });

      await t.step("prestart and poststop hooks get the OCI state on stdin", async () => {
        const hook = `${data}/hook.sh`;
        await writeScript(hook, `#!/bin/sh\ncat > "$1"\n`);
        const id = (await ok(daemon, [
          "run",
          "-d",
          "--prestart-hook",
          `${hook} ${data}/prestart.json`,
          "--poststop-hook",
          `${hook} ${data}/poststop.json`,
          "--enableLxcfs",
          "--name",
          "hooked",
          "busybox",
          "sleep",
          "100",
        ])).trim();
        const prestart = JSON.parse(await Deno.readTextFile(`${data}/prestart.json`));
        assert.equal(prestart.id, id);
        assert.equal(prestart.pid, (await inspect(daemon, "hooked")).State.Pid);
        assert.ok(prestart.pid > 0);
        const view = await inspect(daemon, "hooked");
        assert.deepEqual(view.HostConfig.PrestartHooks, [`${hook} ${data}/prestart.json`]);
        assert.equal(view.HostConfig.EnableLxcfs, true);
        await ok(daemon, ["stop", "-t", "0", "hooked"]);
        await waitFor(() => Deno.stat(`${data}/poststop.json`).then(() => true, () => false), {
          timeoutMs: 10_000,
          message: "the poststop hook did not run",
        });
        const poststop = JSON.parse(await Deno.readTextFile(`${data}/poststop.json`));
        assert.equal(poststop.id, id);
        // The daemon's own prestart hook ran for this container too.
        const global = (await Deno.readTextFile(`${globalDir}/global.log`)).trim().split("\n");
        assert.ok(global.some((line) => JSON.parse(line).id === id), global.join("\n"));
        await ok(daemon, ["rm", "hooked"]);
        const bad = await daemon.pouch(["create", "--prestart-hook", "hook.sh", "busybox", "true"]);
        assert.equal(bad.code, 125);
        assert.match(bad.stderr, /invalid prestart hook "hook.sh": want an absolute PATH/);
      });
    }, {
      config: {
        hooks: { prestart: [{ path: globalHook, args: [globalHook, `${globalDir}/global.log`] }] },
      },
    });
  } finally {
    await Deno.remove(globalDir, { recursive: true });
  }
});
