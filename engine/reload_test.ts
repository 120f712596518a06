import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { Logger } from "./log.ts";
import { reloadConfig } from "./reload.ts";

Deno.test("reloadConfig() applies mirrors, insecure registries and the log level in place", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-reload-" });
  try {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(file, JSON.stringify({ "log-level": "warn" }));
    const args = ["--config-file", file];
    const config = await loadConfig(args);
    assert.ok(config !== "help");
    const lines: string[] = [];
    const log = new Logger(config.logLevel, (line) => lines.push(line));
    const registry = { mirrors: config.registryMirrors, insecure: config.insecureRegistries };

    await Deno.writeTextFile(
      file,
      JSON.stringify({
        "debug": true,
        "registry-mirrors": ["https://m.example"],
        "insecure-registries": ["r.example:5000"],
      }),
    );
    const changed = await reloadConfig(args, { config, registry, log });
    assert.deepEqual(changed.sort(), [
      "debug",
      "insecureRegistries",
      "logLevel",
      "registryMirrors",
    ]);
    assert.equal(log.level, "debug");
    assert.deepEqual(registry.mirrors, { "docker.io": ["https://m.example"] });
    assert.deepEqual(registry.insecure, ["r.example:5000"]);
    assert.deepEqual(config.insecureRegistries, ["r.example:5000"]);
    assert.ok(lines.some((l) => /INFO config reloaded changed=/.test(l)));

    // Flags still win over the file: -D keeps debug on whatever the file says.
    await Deno.writeTextFile(file, JSON.stringify({ "log-level": "error" }));
    await reloadConfig([...args, "-D"], { config, registry, log });
    assert.equal(log.level, "debug");
    await reloadConfig(args, { config, registry, log });
    assert.equal(log.level, "error");
    assert.deepEqual(registry.mirrors, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reloadConfig() keeps the running config when the file is broken", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-reload-" });
  try {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(file, JSON.stringify({ "insecure-registries": ["a.example"] }));
    const args = ["--config-file", file];
    const config = await loadConfig(args);
    assert.ok(config !== "help");
    const lines: string[] = [];
    const log = new Logger("info", (line) => lines.push(line));
    const registry = { insecure: config.insecureRegistries };
    await Deno.writeTextFile(file, JSON.stringify({ "log-level": "loud" }));
    assert.deepEqual(await reloadConfig(args, { config, registry, log }), []);
    assert.deepEqual(registry.insecure, ["a.example"]);
    assert.ok(lines.some((l) => /ERROR config reload failed.*invalid log level loud/.test(l)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
