/**
 * Hook plugins end to end: a temp plugin directory holding a module with every hook, a module
 * that throws at load, and an executable, given to a real daemon with `--plugin-dir`.
 */
import assert from "node:assert/strict";
import {
  inspectContainer as inspect,
  pouchOk as ok,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

/** The module plugin: every hook, each leaving a trace in `dir`, some failing on purpose. */
function hooksModule(dir: string): string {
  return `
const trace = (file, line) => Deno.writeTextFileSync(${JSON.stringify(dir)} + "/" + file,
  line + "\\n", { append: true });
export default {
  name: "tester",
  daemon: {
    beforeStart: (info) => trace("daemon", "start " + info.pid),
    beforeStop: (info) => trace("daemon", "stop " + info.pid),
  },
  container: {
    beforeCreate(request, info) {
      if (request.Labels?.refuse === "yes") {
        throw Object.assign(new Error("refused by label"), { status: 400 });
      }
      if (request.Labels?.crash === "yes") throw new Error("crashed on purpose");
      request.Labels = { ...request.Labels, plugged: "yes", created_as: info.name ?? "" };
      request.Env = [...(request.Env ?? []), "PLUGGED=1"];
    },
    beforeStart(container) {
      if (container.name === "nostart") throw new Error("no start for you");
      trace("started", container.name);
    },
    afterStop: (container) => trace("stopped", container.name + ":" + container.exitCode),
  },
  volume: {
    beforeVolumeCreate(volume) {
      if (volume.Labels.tmp === "yes") {
        return { ...volume, DriverOpts: { type: "tmpfs", device: "tmpfs", o: "size=1m" } };
      }
    },
  },
  api: {
    routes(app) {
      app.get("/plugins/tester/ping", (c) => c.json({ ok: true }));
      app.get("/plugins/tester/guarded", (c) => c.json({ reached: true }));
    },
    wrap: [
      {
        method: "GET",
        path: "/version",
        async handler(c, next) {
          await next();
          c.header("X-Plugged", "1");
        },
      },
      {
        method: "GET",
        path: "/plugins/tester/guarded",
        handler() {
          throw new Error("wrapper failed");
        },
      },
    ],
  },
};
`;
}

/** The executable plugin: a Deno script for two hooks, refusing with exit 2 on request. */
function executable(): string {
  return `#!/usr/bin/env -S ${Deno.execPath()} run -A
const hook = Deno.args[0];
if (hook === "hooks") {
  console.log(JSON.stringify(["container.beforeCreate", "cri.beforeCriCreateContainer"]));
  Deno.exit(0);
}
const input = JSON.parse(await new Response(Deno.stdin.readable).text());
const env = input.request.Env ?? [];
if (env.includes("EXEC_REFUSE=1")) {
  console.error("refused by the executable");
  Deno.exit(2);
}
if (env.includes("EXEC_CRASH=1")) Deno.exit(1);
input.request.Labels = { ...input.request.Labels, exec: hook };
console.log(JSON.stringify({ request: input.request }));
`;
}

Deno.test("hook plugins: every hook point, failures reported, never fatal", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-plugins-" });
  const plugins = `${dir}/plugins`;
  await Deno.mkdir(plugins);
  await Deno.writeTextFile(`${plugins}/a_tester.js`, hooksModule(dir));
  await Deno.writeTextFile(`${plugins}/b_broken.ts`, `throw new Error("broken on purpose");\n`);
  await Deno.writeTextFile(`${plugins}/c_exec`, executable(), { mode: 0o755 });
  // Not a plugin: a Docker volume plugin's spec file is left alone.
  await Deno.writeTextFile(`${plugins}/other.spec`, "unix:///nowhere.sock\n");
  try {
    await withBusyboxDaemon(async (daemon) => {
      await t.step("plugins load in name order; one throwing at load is skipped", async () => {
        const log = await daemon.log();
        assert.match(log, /plugin loaded.*tester/);
        assert.match(log, /plugin loaded.*c_exec/);
        assert.match(log, /plugin skipped.*b_broken.*broken on purpose/);
        assert.doesNotMatch(log, /other\.spec/);
        assert.match(await Deno.readTextFile(`${dir}/daemon`), /^start \d+\n$/);
      });

      await t.step("beforeCreate changes the config; the executable's change follows", async () => {
        const out = await ok(daemon, ["run", "--name", "plugged", "busybox", "env"]);
        assert.match(out, /^PLUGGED=1$/m);
        const labels = (await inspect(daemon, "plugged")).Config.Labels;
        assert.equal(labels.plugged, "yes");
        assert.equal(labels.created_as, "plugged");
        assert.equal(labels.exec, "container.beforeCreate");
      });

      await t.step("beforeStart and afterStop see each run", async () => {
        assert.equal(await Deno.readTextFile(`${dir}/started`), "plugged\n");
        await waitFor(async () =>
          (await Deno.readTextFile(`${dir}/stopped`).catch(() => "")) === "plugged:0\n"
        );
      });

      await t.step("a failing beforeCreate fails the create, naming the plugin", async () => {
        const cases: Array<[string[], number, RegExp]> = [
          [["-l", "refuse=yes"], 400, /plugin tester: container.beforeCreate: refused by label/],
          [["-l", "crash=yes"], 500, /plugin tester: container.beforeCreate: crashed on purpose/],
          [["-e", "EXEC_REFUSE=1"], 400, /plugin c_exec: .*refused by the executable/],
          [["-e", "EXEC_CRASH=1"], 500, /plugin c_exec: .*exited with code 1/],
        ];
        for (const [flags, status, message] of cases) {
          const cli = await daemon.pouch(["create", "--name", "failed", ...flags, "busybox"]);
          assert.notEqual(cli.code, 0);
          assert.match(cli.stderr, message);
          const labels: Record<string, string> = {};
          const env: string[] = [];
          if (flags[0] === "-l") labels[flags[1]!.split("=")[0]!] = "yes";
          else env.push(flags[1]!);
          const api = await daemon.api("POST", "/containers/create?name=failed", {
            Image: "busybox",
            Cmd: ["true"],
            Labels: labels,
            Env: env,
          });
          assert.equal(api.status, status, api.body);
          assert.match(JSON.parse(api.body).message, message);
        }
        assert.equal((await daemon.api("GET", "/containers/failed/json")).status, 404);
      });

      await t.step(
        "a failing beforeStart fails the start; the container stays created",
        async () => {
          await ok(daemon, ["create", "--name", "nostart", "busybox", "true"]);
          const start = await daemon.pouch(["start", "nostart"]);
          assert.notEqual(start.code, 0);
          assert.match(start.stderr, /plugin tester: container.beforeStart: no start for you/);
          assert.equal((await inspect(daemon, "nostart")).State.Status, "created");
        },
      );

      await t.step("beforeVolumeCreate changes the driver options", async () => {
        await ok(daemon, ["volume", "create", "--label", "tmp=yes", "scratch"]);
        const volume = JSON.parse((await daemon.api("GET", "/volumes/scratch")).body);
        assert.deepEqual(volume.Options, { type: "tmpfs", device: "tmpfs", o: "size=1m" });
        await ok(daemon, ["volume", "create", "plain"]);
        const plain = JSON.parse((await daemon.api("GET", "/volumes/plain")).body);
        assert.deepEqual(plain.Options ?? {}, {});
      });

      await t.step("API hooks: added routes, wrapped handlers, a failing wrapper", async () => {
        for (const path of ["/plugins/tester/ping", "/v1.41/plugins/tester/ping"]) {
          const ping = await daemon.api("GET", path);
          assert.equal(ping.status, 200, path);
          assert.deepEqual(JSON.parse(ping.body), { ok: true });
        }
        using client = Deno.createHttpClient({
          proxy: { transport: "unix", path: daemon.socket },
        });
        const response = await fetch("http://pouch/v1.41/version", { client });
        assert.equal(response.headers.get("x-plugged"), "1");
        assert.equal(response.status, 200);
        await response.body?.cancel();
        const guarded = await daemon.api("GET", "/plugins/tester/guarded");
        assert.equal(guarded.status, 500);
        assert.match(JSON.parse(guarded.body).message, /plugin tester: api: wrapper failed/);
        // The daemon goes on.
        assert.equal((await daemon.api("GET", "/_ping")).status, 200);
      });

      await t.step("daemon.beforeStop runs when the daemon stops", async () => {
        await ok(daemon, ["rm", "-f", "plugged", "nostart"]);
        await daemon.stop();
        assert.match(await Deno.readTextFile(`${dir}/daemon`), /^start \d+\nstop \d+\n$/);
        await daemon.start();
      });
    }, { args: ["--plugin-dir", plugins] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
