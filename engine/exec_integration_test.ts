/**
 * End-to-end tests of exec, attach, TTYs, stdin and resizing: a real daemon, pouch's CLI and the
 * Docker CLI, the interactive cases driven through real terminals (tmux panes).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

const root = fileURLToPath(new URL("../", import.meta.url));

async function apiJson(daemon: TestDaemon, method: string, path: string, body?: unknown) {
  const { status, body: text } = await daemon.api(method, path, body);
  return { status, json: text ? JSON.parse(text) : undefined };
}

/** A terminal: a tmux session running one command, then `EXIT=<code>` and a pause. */
class Terminal implements AsyncDisposable {
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  static async open(name: string, command: string, size = { x: 120, y: 40 }): Promise<Terminal> {
    const unique = `${name}-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;
    await tmux([
      "new-session",
      "-d",
      "-s",
      unique,
      "-x",
      String(size.x),
      "-y",
      String(size.y),
      `${command}; echo EXIT=$?; sleep 600`,
    ]);
    return new Terminal(unique);
  }

  /** Types `keys` (tmux key names such as `Enter`, `C-p`). */
  async send(...keys: string[]): Promise<void> {
    await tmux(["send-keys", "-t", this.name, ...keys]);
  }

  /** Types a line. */
  async line(text: string): Promise<void> {
    await tmux(["send-keys", "-t", this.name, "-l", text]);
    await this.send("Enter");
  }

  async screen(): Promise<string> {
    return await tmux(["capture-pane", "-p", "-t", this.name]);
  }

  async resize(x: number, y: number): Promise<void> {
    await tmux(["resize-window", "-t", this.name, "-x", String(x), "-y", String(y)]);
  }

  /** Waits until the screen matches `pattern`; answers the match. */
  async expect(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | null = null;
    try {
      await waitFor(async () => (match = pattern.exec(await this.screen())) !== null, {
        timeoutMs,
        intervalMs: 100,
      });
    } catch {
      throw new Error(`screen never matched ${pattern}:\n${await this.screen()}`);
    }
    return match!;
  }

  /**
   * Types `line` until the screen matches `pattern`: a resize reaches the process through the
   * CLI's SIGWINCH handler and an API call, so the first answer may predate it.
   */
  async untilAnswered(line: string, pattern: RegExp): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      await this.line(line);
      try {
        await this.expect(pattern, 500);
        return;
      } catch {
        // Not yet: ask again.
      }
    }
    await this.expect(pattern, 1);
  }

  /** Waits for the command to end; answers its exit code. */
  async exitCode(): Promise<number> {
    return Number((await this.expect(/EXIT=(\d+)/))[1]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await tmux(["kill-session", "-t", this.name]).catch(() => {});
  }
}

async function tmux(args: string[]): Promise<string> {
  const result = await new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(result.stdout);
  if (!result.success) {
    throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(result.stderr)}`);
  }
  return text;
}

/** The shell command that runs pouch's CLI, or the Docker CLI, against `daemon`. */
function clis(daemon: TestDaemon): Record<"pouch" | "docker", string> {
  return {
    pouch: `${Deno.execPath()} run -A ${root}main.ts -H unix://${daemon.socket}`,
    docker:
      `env DOCKER_HOST=unix://${daemon.socket} DOCKER_CONFIG=${daemon.dir}/docker-config /usr/local/bin/docker`,
  };
}

Deno.test("exec: output, exit codes, options, stdin and inspect", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await ok(daemon, ["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);

    for (const cli of ["pouch", "docker"] as const) {
      const run = (args: string[], stdin?: string) =>
        daemon[cli](args, stdin === undefined ? {} : { stdin: new TextEncoder().encode(stdin) });

      await t.step(`${cli} exec: output and exit codes 0, 3, 127, 126`, async () => {
        const hi = await run(["exec", "web", "echo", "hi"]);
        assert.equal(hi.code, 0, hi.stderr);
        assert.equal(hi.stdout, "hi\n");
        const three = await run(["exec", "web", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert.equal(three.code, 3);
        assert.equal(three.stdout, "out\n");
        assert.equal(three.stderr, "err\n");
        const missing = await run(["exec", "web", "nosuch"]);
        assert.equal(missing.code, 127);
        assert.match(missing.stdout, /OCI runtime exec failed: .*executable file not found/);
        const notExecutable = await run(["exec", "web", "/etc/passwd"]);
        assert.equal(notExecutable.code, 126);
        assert.match(notExecutable.stdout, /permission denied/);
      });

      await t.step(`${cli} exec -e -w -u`, async () => {
        const result = await run([
          "exec",
          "-e",
          "GREETING=hello",
          "-w",
          "/tmp",
          "-u",
          "nobody",
          "web",
          "sh",
          "-c",
          'echo "$GREETING $(pwd) $(id -un) $(id -u)"',
        ]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, "hello /tmp nobody 65534\n");
        const unknown = await run(["exec", "-u", "nosuchuser", "web", "true"]);
        assert.notEqual(unknown.code, 0);
        // Docker resolves the user at start, on the stream, like a missing executable.
        assert.match(unknown.stdout + unknown.stderr, /unable to find user nosuchuser/);
      });

      await t.step(
        `echo hi | ${cli} exec -i web cat: stdin's end reaches the process`,
        async () => {
          const result = await run(["exec", "-i", "web", "cat"], "hi\nthere\n");
          assert.equal(result.code, 0, result.stderr);
          assert.equal(result.stdout, "hi\nthere\n");
          const count = await run(["exec", "-i", "web", "wc", "-c"], "x".repeat(200_000));
          assert.equal(count.stdout.trim(), "200000");
        },
      );

      await t.step(`${cli} exec -d runs in the background`, async () => {
        const marker = `/tmp/${cli}-detached`;
        const result = await run(["exec", "-d", "web", "sh", "-c", `sleep 0.3; touch ${marker}`]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, "");
        await waitFor(async () =>
          (await daemon.pouch(["exec", "web", "test", "-f", marker])).code === 0
        );
      });
    }

    await t.step("exec --privileged gets the daemon's capabilities", async () => {
      const capEff = (out: string) => /CapEff:\s+([0-9a-f]+)/.exec(out)?.[1];
      const plain = capEff(await ok(daemon, ["exec", "web", "cat", "/proc/self/status"]));
      const privileged = capEff(
        await ok(daemon, ["exec", "--privileged", "web", "cat", "/proc/self/status"]),
      );
      const own = capEff(await Deno.readTextFile("/proc/self/status"));
      assert.equal(plain, "00000000a80425fb");
      assert.equal(privileged, own);
    });

    await t.step("exec inspect, ExecIDs, resize and start conflicts through the API", async () => {
      const created = await apiJson(daemon, "POST", "/containers/web/exec", {
        Cmd: ["sh", "-c", "sleep 0.5; exit 4"],
      });
      assert.equal(created.status, 201);
      const id = created.json.Id as string;
      assert.match(id, /^[0-9a-f]{64}$/);
      let info = (await apiJson(daemon, "GET", `/exec/${id}/json`)).json;
      assert.equal(info.Running, false);
      assert.equal(info.ExitCode, null);
      assert.deepEqual(info.ProcessConfig, {
        tty: false,
        entrypoint: "sh",
        arguments: ["-c", "sleep 0.5; exit 4"],
        privileged: false,
        user: "",
      });
      assert.equal(info.ContainerID.length, 64);
      assert.deepEqual((await apiJson(daemon, "GET", "/containers/web/json")).json.ExecIDs, [id]);

      const start = await daemon.api("POST", `/exec/${id}/start`, { Detach: true });
      assert.equal(start.status, 200, start.body);
      info = (await apiJson(daemon, "GET", `/exec/${id}/json`)).json;
      assert.equal(info.Running, true);
      assert.ok(info.Pid > 0);
      // A non-TTY exec ignores resizes, as Docker does.
      assert.equal((await daemon.api("POST", `/exec/${id}/resize?h=10&w=10`)).status, 200);
      const again = await apiJson(daemon, "POST", `/exec/${id}/start`, { Detach: true });
      assert.equal(again.status, 409);
      assert.match(again.json.message, /is already running/);
      await waitFor(async () =>
        (await apiJson(daemon, "GET", `/exec/${id}/json`)).json.ExitCode === 4
      );
      info = (await apiJson(daemon, "GET", `/exec/${id}/json`)).json;
      assert.equal(info.Running, false);
      assert.equal((await apiJson(daemon, "GET", "/containers/web/json")).json.ExecIDs, null);
      const rerun = await apiJson(daemon, "POST", `/exec/${id}/start`, { Detach: true });
      assert.equal(rerun.status, 409);
      assert.match(rerun.json.message, /has already run/);

      const unknown = await apiJson(daemon, "GET", `/exec/${"0".repeat(64)}/json`);
      assert.equal(unknown.status, 404);
      assert.match(unknown.json.message, /No such exec instance/);
      const empty = await apiJson(daemon, "POST", "/containers/web/exec", { Cmd: [] });
      assert.equal(empty.status, 400);
      assert.equal(empty.json.message, "No exec command specified");
      const keys = await apiJson(daemon, "POST", "/containers/web/exec", {
        Cmd: ["true"],
        DetachKeys: "ctrl-1",
      });
      assert.equal(keys.status, 400);
      const badSize = await daemon.api("POST", `/exec/${id}/resize?h=x&w=1`);
      assert.equal(badSize.status, 400);
    });

    await t.step("exec in a paused or stopped container is 409, attach refuses", async () => {
      const web = (await apiJson(daemon, "GET", "/containers/web/json")).json.Id;
      await ok(daemon, ["pause", "web"]);
      try {
        const paused = await daemon.pouch(["exec", "web", "true"]);
        assert.equal(paused.code, 1);
        assert.match(
          paused.stderr,
          new RegExp(`Container ${web} is paused, unpause the container before exec`),
        );
        const api = await daemon.api("POST", "/containers/web/exec", { Cmd: ["true"] });
        assert.equal(api.status, 409);
        const attach = await daemon.pouch(["attach", "web"]);
        assert.equal(attach.code, 1);
        assert.match(attach.stderr, /You cannot attach to a paused container, unpause it first/);
      } finally {
        await ok(daemon, ["unpause", "web"]);
      }
      await ok(daemon, ["create", "--name", "idle", "busybox", "true"]);
      const stopped = await daemon.pouch(["exec", "idle", "true"]);
      assert.equal(stopped.code, 1);
      assert.match(stopped.stderr, /Container [0-9a-f]{64} is not running/);
      const docker = await daemon.docker(["exec", "idle", "true"]);
      assert.notEqual(docker.code, 0);
      assert.match(docker.stderr, /is not running/);
      const attach = await daemon.pouch(["attach", "idle"]);
      assert.equal(attach.code, 1);
      assert.match(attach.stderr, /You cannot attach to a stopped container, start it first/);
      const missing = await daemon.pouch(["exec", "nosuch", "true"]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /No such container: nosuch/);
      await ok(daemon, ["rm", "idle"]);
    });

    await t.step("start -ai and run -i with piped stdin", async () => {
      const piped = await daemon.pouch(["run", "--rm", "-i", "busybox", "cat"], {
        stdin: new TextEncoder().encode("piped\n"),
      });
      assert.equal(piped.code, 0, piped.stderr);
      assert.equal(piped.stdout, "piped\n");
      await ok(daemon, [
        "create",
        "-i",
        "--name",
        "again",
        "busybox",
        "sh",
        "-c",
        'read line; echo "got $line"; exit 6',
      ]);
      const started = await daemon.pouch(["start", "-ai", "again"], {
        stdin: new TextEncoder().encode("once more\n"),
      });
      assert.equal(started.code, 6, started.stderr);
      assert.equal(started.stdout, "got once more\n");
      await ok(daemon, ["rm", "again"]);
      // The Docker CLI attaches before the start and may send all of its input (and its end)
      // before the container runs: nothing of it may be lost.
      const input = new Uint8Array(200_000).map((_, i) => 97 + (i % 26));
      const docker = await daemon.docker(["run", "--rm", "-i", "busybox", "wc", "-c"], {
        stdin: input,
      });
      assert.equal(docker.code, 0, docker.stderr);
      assert.equal(docker.stdout.trim(), "200000");
    });
  });
});

Deno.test("interactive sessions in a terminal: run -it, exec -it, resize, detach, attach", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    for (const cli of ["pouch", "docker"] as const) {
      const command = clis(daemon)[cli];
      const name = `${cli}-it`;

      await t.step(`${cli} run -it: a real TTY that follows the terminal's size`, async () => {
        await using term = await Terminal.open(
          `${name}-run`,
          `${command} run -it --name ${name} busybox sh`,
        );
        await term.expect(/^\/ # ?$/m);
        await term.line("tty; stty size");
        await term.expect(/\/dev\/pts\/\d+\s+40 120/);
        await term.resize(100, 30);
        await term.untilAnswered("stty size", /^30 100\s*$/m);
        await term.line("echo typed-$((6*7))");
        await term.expect(/^typed-42\s*$/m);

        await term.send("C-p", "C-q");
        assert.equal(await term.exitCode(), 0);
        const state = (await apiJson(daemon, "GET", `/containers/${name}/json`)).json.State;
        assert.equal(state.Running, true, "detaching leaves the container running");
      });

      await t.step(`${cli} exec -it: a TTY of its own, resized, with its exit code`, async () => {
        await using term = await Terminal.open(`${name}-exec`, `${command} exec -it ${name} sh`, {
          x: 90,
          y: 25,
        });
        await term.expect(/^\/ # ?$/m);
        await term.line("tty; stty size; echo $TERM");
        await term.expect(/\/dev\/pts\/\d+\s+25 90\s+xterm/);
        await term.resize(70, 20);
        await term.untilAnswered("stty size", /^20 70\s*$/m);
        await term.line("exit 4");
        assert.equal(await term.exitCode(), 4);
      });

      await t.step(`${cli} exec -it with --detach-keys detaches, the process runs on`, async () => {
        await using term = await Terminal.open(
          `${name}-exec-detach`,
          `${command} exec -it --detach-keys ctrl-a,x ${name} sh -c 'echo ready; sleep 600'`,
        );
        await term.expect(/^ready/m);
        const ids = (await apiJson(daemon, "GET", `/containers/${name}/json`)).json.ExecIDs;
        assert.equal(ids.length, 1);
        await term.send("C-a", "x");
        if (cli === "docker") {
          // Docker's CLI reports an exec's detach as an error of its own; pouch's exits 0.
          await term.expect(/read escape sequence/);
          assert.equal(await term.exitCode(), 1);
        } else {
          assert.equal(await term.exitCode(), 0);
        }
        const info = (await apiJson(daemon, "GET", `/exec/${ids[0]}/json`)).json;
        assert.equal(info.Running, true);
      });

      await t.step(`${cli} attach: back into the session, exit code on exit`, async () => {
        await using term = await Terminal.open(`${name}-attach`, `${command} attach ${name}`);
        // The shell prints nothing on attach: type until it answers.
        await term.line("echo back-$((1+1))");
        await term.expect(/^back-2\s*$/m);
        await term.line("exit 5");
        assert.equal(await term.exitCode(), 5);
        const state = (await apiJson(daemon, "GET", `/containers/${name}/json`)).json.State;
        assert.equal(state.ExitCode, 5);
        await ok(daemon, ["rm", name]);
      });
    }

    await t.step("pouch run -it exits with the shell's code", async () => {
      const command = clis(daemon).pouch;
      await using term = await Terminal.open("pouch-rm", `${command} run --rm -it busybox sh`);
      await term.expect(/^\/ # ?$/m);
      await term.line("exit 9");
      assert.equal(await term.exitCode(), 9);
    });
  });
});
