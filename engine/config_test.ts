import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { isInvalidArgument } from "./errors.ts";

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/config.json`, text);
    await fn(`${dir}/config.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadConfig() reads the file and lets flags win", async () => {
  await withFile(
    JSON.stringify({ "home-dir": "/srv/pouch", debug: true, listen: ["unix:///a.sock"] }),
    async (path) => {
      const config = await loadConfig(["--config-file", path, "-l", "unix:///b.sock"]);
      assert.ok(config !== "help");
      assert.equal(config.homeDir, "/srv/pouch");
      assert.equal(config.debug, true);
      assert.deepEqual(config.listen, ["unix:///b.sock"]);
    },
  );
});

Deno.test("loadConfig() accepts PouchContainer's runtimes and --add-runtime", async () => {
  await withFile(JSON.stringify({ runtimes: { kata: { path: "/bin/kata" } } }), async (path) => {
    const config = await loadConfig(["--config-file", path, "--add-runtime", "crun=/bin/crun"]);
    assert.ok(config !== "help");
    assert.deepEqual(config.runtimes, { runc: "runc", kata: "/bin/kata", crun: "/bin/crun" });
  });
});

Deno.test("loadConfig() refuses bad files, unknown keys, flags and addresses", async () => {
  await withFile("{nope", async (path) => {
    await assert.rejects(loadConfig(["--config-file", path]), isInvalidArgument);
  });
  await withFile(JSON.stringify({ bogus: 1 }), async (path) => {
    await assert.rejects(loadConfig(["--config-file", path]), isInvalidArgument);
  });
  await assert.rejects(loadConfig(["--bogus"]), isInvalidArgument);
  await assert.rejects(
    loadConfig(["--config-file", "/nonexistent/config.json"]),
    isInvalidArgument,
  );
  await assert.rejects(
    loadConfig(["--config-file", "/dev/null/x", "-l", "tcp://0.0.0.0:1"]),
    isInvalidArgument,
  );
});

Deno.test("loadConfig() reads daemon-wide OCI hooks and --rich-init", async () => {
  const hooks = {
    prestart: [{ path: "/usr/bin/log", args: ["log", "start"], timeout: 5 }],
    poststop: [{ path: "/usr/bin/log" }],
  };
  await withFile(JSON.stringify({ hooks }), async (path) => {
    const config = await loadConfig(["--config-file", path, "--rich-init", "/opt/tini"]);
    assert.ok(config !== "help");
    assert.deepEqual(config.hooks, {
      prestart: [{ path: "/usr/bin/log", args: ["log", "start"], timeout: 5 }],
      poststop: [{ path: "/usr/bin/log", args: ["/usr/bin/log"] }],
    });
    assert.equal(config.richInit, "/opt/tini");
  });
  for (
    const bad of [
      { hooks: [] },
      { hooks: { poststart: [] } },
      { hooks: { prestart: [{ path: "log" }] } },
      { hooks: { prestart: [{ path: "/bin/log", args: "x" }] } },
    ]
  ) {
    await withFile(JSON.stringify(bad), async (path) => {
      await assert.rejects(loadConfig(["--config-file", path]), isInvalidArgument);
    });
  }
});

Deno.test("loadConfig() reads --volume-plugin-dir and --volume-plugin-timeout", async () => {
  await withFile("{}", async (path) => {
    const defaults = await loadConfig(["--config-file", path]);
    assert.ok(defaults !== "help");
    assert.deepEqual(defaults.volumePluginDirs, [
      "/run/docker/plugins",
      "/run/pouch/plugins",
      "/etc/docker/plugins",
      "/usr/lib/docker/plugins",
      "/etc/pouch/plugins",
    ]);
    assert.equal(defaults.volumePluginTimeoutMs, 30_000);
    for (const bad of [["--volume-plugin-dir", "rel"], ["--volume-plugin-timeout", "soon"]]) {
      await assert.rejects(loadConfig(["--config-file", path, ...bad]), isInvalidArgument);
    }
  });
  await withFile(
    JSON.stringify({ "volume-plugin-dir": ["/srv/plugins"], "volume-plugin-timeout": 5 }),
    async (path) => {
      const fromFile = await loadConfig(["--config-file", path]);
      assert.ok(fromFile !== "help");
      assert.deepEqual(fromFile.volumePluginDirs, ["/srv/plugins"]);
      assert.equal(fromFile.volumePluginTimeoutMs, 5000);
      const flags = await loadConfig([
        "--config-file",
        path,
        "--volume-plugin-dir",
        "/a",
        "--volume-plugin-dir",
        "/b",
        "--volume-plugin-timeout",
        "500ms",
      ]);
      assert.ok(flags !== "help");
      assert.deepEqual(flags.volumePluginDirs, ["/a", "/b"]);
      assert.equal(flags.volumePluginTimeoutMs, 500);
    },
  );
});
