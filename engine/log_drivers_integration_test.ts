/**
 * Log drivers end to end: json-file rotation with the daemon's default options, `none`, syslog
 * to a unix datagram socket the test binds, and refused drivers.
 */
import assert from "node:assert/strict";
import {
  inspectContainer as inspect,
  pouchOk as ok,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";
import { UnixDatagramSocket } from "./_unix_dgram.ts";

Deno.test("log drivers: json-file rotation, none, syslog, refused drivers", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step("the daemon's --log-opt rotate a container's json-file log", async () => {
      // 40 entries of about 80 bytes: 3 files of at most 1 KiB keep the last 30 or so.
      await ok(daemon, [
        "run",
        "--name",
        "rotated",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); done",
      ]);
      const view = await inspect(daemon, "rotated");
      assert.deepEqual(view.HostConfig.LogConfig, {
        Type: "json-file",
        Config: { "max-size": "1k", "max-file": "3" },
      });
      const dir = `${daemon.home}/containers/${view.Id}`;
      assert.equal(view.LogPath, `${dir}/json.log`);
      const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.startsWith("json.log")
      ).sort();
      assert.deepEqual(files, ["json.log", "json.log.1", "json.log.2"]);
      for (const name of files) assert.ok(Deno.statSync(`${dir}/${name}`).size <= 1024);

      const lines = (await ok(daemon, ["logs", "rotated"])).trim().split("\n");
      // What is kept is the end of the output, in order, across the three files.
      const first = Number(lines[0]!.slice("line-".length));
      assert.ok(first > 0 && first < 30, lines.join(","));
      assert.deepEqual(lines, Array.from({ length: 40 - first }, (_, i) => `line-${first + i}`));
      assert.equal(await ok(daemon, ["logs", "--tail", "2", "rotated"]), "line-38\nline-39\n");
    });

    await t.step("logs -f follows a log while it rotates", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "follow",
        "--log-opt",
        "max-size=300",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 12 ]; do echo f-$i; i=$((i+1)); sleep 0.1; done",
      ]);
      const followed = await ok(daemon, ["logs", "-f", "follow"]);
      assert.equal(followed, Array.from({ length: 12 }, (_, i) => `f-${i}\n`).join(""));
    });

    await t.step("none stores nothing and logs answers Docker's error", async () => {
      await ok(daemon, ["run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "x"]);
      const view = await inspect(daemon, "quiet");
      assert.deepEqual(view.HostConfig.LogConfig, { Type: "none", Config: {} });
      assert.equal(view.LogPath, "");
      const logs = await daemon.pouch(["logs", "quiet"]);
      assert.notEqual(logs.code, 0);
      assert.match(logs.stderr, /configured logging driver does not support reading/);
      const api = await daemon.api("GET", "/containers/quiet/logs?stdout=1");
      assert.equal(api.status, 501);
    });

    await t.step("syslog sends each line to the socket, tagged", async () => {
      const path = `${daemon.dir}/syslog.sock`;
      const receiver = UnixDatagramSocket.bind(path);
      try {
        await ok(daemon, [
          "run",
          "--name",
          "sys",
          "--log-driver",
          "syslog",
          "--log-opt",
          `syslog-address=unixgram://${path}`,
          "--log-opt",
          "tag={{.Name}}",
          "busybox",
          "sh",
          "-c",
          "echo out; echo err >&2",
        ]);
        const got: string[] = [];
        await waitFor(() => {
          for (let d = receiver.receive(); d; d = receiver.receive()) {
            got.push(new TextDecoder().decode(d));
          }
          return got.length >= 2;
        }, { timeoutMs: 5000 });
        assert.deepEqual(
          got.map((m) => m.replace(/^(<\d+>).* (sys)\[\d+\]: (.*)$/, "$1 $2 $3")).sort(),
          ["<27> sys err", "<30> sys out"],
        );
      } finally {
        receiver.close();
      }
      // Nothing listens any more: the start fails, as Docker's does.
      const again = await daemon.pouch(["start", "sys"]);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /failed to initialize logging driver/);
    });

    await t.step("unknown drivers and options are refused at create, nothing created", async () => {
      for (const flags of [["--log-driver", "fluentd"], ["--log-opt", "max-bytes=1"]]) {
        const result = await daemon.pouch(["create", "--name", "refused", ...flags, "busybox"]);
        assert.notEqual(result.code, 0);
        assert.match(result.stderr, /no log driver named 'fluentd'|unknown log opt 'max-bytes'/);
      }
      const create = await daemon.api("POST", "/containers/create?name=refused", {
        Image: "busybox",
        Cmd: ["true"],
        HostConfig: { LogConfig: { Type: "json-file", Config: { compress: "true" } } },
      });
      assert.equal(create.status, 400, create.body);
      assert.equal((await daemon.api("GET", "/containers/refused/json")).status, 404);
    });
  }, { args: ["--log-opt", "max-size=1k", "--log-opt", "max-file=3"] });
});
