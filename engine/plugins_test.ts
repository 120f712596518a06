import assert from "node:assert/strict";
import { Hono } from "hono";
import { fileURLToPath } from "node:url";
import type { ApiEnv } from "./api/http.ts";
import { isInvalidArgument, kindOf, messageOf } from "./errors.ts";
import { Logger } from "./log.ts";
import { loadPlugins } from "./plugins.ts";

const example = fileURLToPath(new URL("../contrib/plugins/example.ts", import.meta.url));
const VERSION_PREFIX = "/:version{v[0-9]+\\.[0-9]+}";

function quietLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger("debug", (line) => lines.push(line)), lines };
}

Deno.test("the example plugin labels containers, sets an env var and serves its ping", async () => {
  const { log } = quietLog();
  const plugins = await loadPlugins({ paths: [example], log });
  assert.deepEqual(plugins.names, ["example"]);
  const request = await plugins.beforeCreate({ Image: "busybox", Env: ["A=1"] }, {});
  assert.deepEqual(request.Labels, { "io.pouch.example": "true" });
  assert.deepEqual(request.Env, ["A=1", "POUCH_EXAMPLE=1"]);
  // A container's own value wins.
  const own = await plugins.beforeCreate({ Image: "b", Env: ["POUCH_EXAMPLE=0"] }, {});
  assert.deepEqual(own.Env, ["POUCH_EXAMPLE=0"]);

  const app = new Hono<ApiEnv>();
  plugins.installApi(app, { versionPrefix: VERSION_PREFIX });
  app.get("/_ping", (c) => c.text("OK"));
  const ping = await app.request("/v1.41/plugins/example/ping");
  assert.equal(ping.status, 200);
  assert.deepEqual(await ping.json(), { plugin: "example", containersStarted: 0 });
  const wrapped = await app.request("/_ping");
  assert.equal(await wrapped.text(), "OK");
  assert.equal(wrapped.headers.get("X-Pouch-Example"), "1");
});

Deno.test("cri.beforeCriCreateContainer runs module and executable hooks in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/a.ts`,
      `export default { cri: { beforeCriCreateContainer(request, info) {
        request.Labels = { ...request.Labels, sandbox: info.sandboxId };
      } } };`,
    );
    // Answers only the hooks it lists: a container hook never reaches it.
    await Deno.writeTextFile(
      `${dir}/b`,
      `#!/bin/sh
case "$1" in
hooks) echo '["cri.beforeCriCreateContainer"]' ;;
cri.beforeCriCreateContainer) cat >/dev/null; echo '{"request": {"Image": "replaced"}}' ;;
*) echo "unexpected hook $1" >&2; exit 1 ;;
esac
`,
      { mode: 0o755 },
    );
    const { log } = quietLog();
    const plugins = await loadPlugins({ dir, log });
    assert.deepEqual(plugins.names, ["a", "b"]);
    const request = await plugins.beforeCriCreateContainer(
      { Image: "pause", Labels: { x: "1" } },
      { sandboxId: "pod1" },
    );
    assert.deepEqual(request, { Image: "replaced" });
    await plugins.beforeStart({ id: "c", name: "c", image: "i", config: {}, hostConfig: {} });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a hook past its deadline fails the operation; notifications only log", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/slow.ts`,
      `export default { container: {
        beforeCreate: () => new Promise((resolve) => setTimeout(resolve, 2000)),
        afterStop() { throw new Error("after stop failed"); },
      } };`,
    );
    const { log, lines } = quietLog();
    const plugins = await loadPlugins({ dir, log, timeoutMs: 100 });
    await assert.rejects(plugins.beforeCreate({ Image: "x" }), (err) => {
      assert.equal(kindOf(err), "System");
      assert.match(messageOf(err), /plugin slow: container.beforeCreate: did not finish/);
      return true;
    });
    await plugins.afterStop({ id: "c", name: "c", image: "i", config: {}, hostConfig: {} });
    assert.ok(lines.some((l) => /after stop failed/.test(l)), lines.join("\n"));
    // The slow hook's timer must not outlive the test.
    await new Promise((resolve) => setTimeout(resolve, 2000));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a plugin without a default export, or a missing one, is skipped with an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/empty.ts`, `export const x = 1;\n`);
    const { log, lines } = quietLog();
    const plugins = await loadPlugins({ dir, paths: [`${dir}/missing.ts`], log });
    assert.deepEqual(plugins.names, []);
    assert.equal(lines.filter((l) => /plugin skipped/.test(l)).length, 2, lines.join("\n"));
    // With no plugins every hook passes its argument through.
    const request = { Image: "busybox" };
    assert.deepEqual(await plugins.beforeCreate(request), request);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an error with status 400 refuses as the client's fault", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/strict.ts`,
      `export default { volume: { beforeVolumeCreate(v) {
        if (v.Driver !== "local") throw Object.assign(new Error("local only"), { status: 400 });
      } } };`,
    );
    const plugins = await loadPlugins({ dir, log: quietLog().log });
    const volume = { Name: "v", Driver: "nfs", DriverOpts: {}, Labels: {} };
    await assert.rejects(
      plugins.beforeVolumeCreate(volume),
      (err) => isInvalidArgument(err) && /plugin strict: .*local only/.test(messageOf(err)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
