import assert from "node:assert/strict";
import { loadNetworkConfig, parseNetworkConfig, supportsCheck } from "./cni_conf.ts";

const bridge = { type: "bridge", bridge: "cni0", ipam: { type: "host-local" } };

Deno.test("loadNetworkConfig() takes the first valid file by name and says what it skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-cni-conf-" });
  try {
    await Deno.writeTextFile(`${dir}/00-bad.conflist`, JSON.stringify({ name: "x", plugins: [] }));
    await Deno.writeTextFile(`${dir}/cni.lock`, "");
    await Deno.writeTextFile(
      `${dir}/20-b.conflist`,
      JSON.stringify({ cniVersion: "1.0.0", name: "b", plugins: [bridge] }),
    );
    await Deno.writeTextFile(
      `${dir}/10-a.conf`,
      JSON.stringify({ cniVersion: "0.4.0", name: "a", ...bridge }),
    );
    const scan = await loadNetworkConfig(dir);
    assert.equal(scan.config?.file, `${dir}/10-a.conf`);
    // A single plugin's file is a list of one.
    assert.deepEqual(scan.config?.list, {
      cniVersion: "0.4.0",
      name: "a",
      plugins: [{ cniVersion: "0.4.0", name: "a", ...bridge }],
    });
    assert.deepEqual(scan.skipped.map((s) => s.file), [`${dir}/00-bad.conflist`]);
    assert.match(scan.skipped[0]!.reason, /no plugins|cniVersion/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadNetworkConfig() finds nothing in a missing or empty directory", async () => {
  assert.deepEqual(await loadNetworkConfig("/nonexistent/pouch/net.d"), { skipped: [] });
  const dir = await Deno.makeTempDir({ prefix: "pouch-cni-conf-" });
  try {
    assert.deepEqual(await loadNetworkConfig(dir), { skipped: [] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseNetworkConfig() refuses what plugins could not run", () => {
  assert.throws(() => parseNetworkConfig("{", "a.conf"), /not JSON/);
  assert.throws(() => parseNetworkConfig("[]", "a.conf"), /not a JSON object/);
  assert.throws(
    () => parseNetworkConfig(`{"cniVersion":"1.0.0","type":"bridge"}`, "a.conf"),
    /name/,
  );
  assert.throws(
    () => parseNetworkConfig(`{"cniVersion":"0.2.0","name":"n","type":"bridge"}`, "a.conf"),
    /cniVersion "0.2.0"/,
  );
  assert.throws(
    () => parseNetworkConfig(`{"cniVersion":"1.0.0","name":"n","plugins":[{}]}`, "a.conflist"),
    /plugin 0 has no type/,
  );
});

Deno.test("supportsCheck() follows the version and disableCheck", () => {
  const list = (cniVersion: string, disableCheck?: boolean) =>
    parseNetworkConfig(
      JSON.stringify({ cniVersion, name: "n", plugins: [bridge], disableCheck }),
      "n.conflist",
    );
  assert.equal(supportsCheck(list("1.0.0")), true);
  assert.equal(supportsCheck(list("0.4.0")), true);
  assert.equal(supportsCheck(list("0.3.1")), false);
  assert.equal(supportsCheck(list("1.0.0", true)), false);
});
