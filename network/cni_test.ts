import assert from "node:assert/strict";
import {
  CniError,
  CniRunner,
  containerAddress,
  type NetworkConfigList,
  parseResult,
  type PluginExec,
} from "./cni.ts";

const LIST: NetworkConfigList = {
  cniVersion: "1.0.0",
  name: "net1",
  plugins: [
    { type: "bridge", bridge: "br0" },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

const RESULT = {
  cniVersion: "1.0.0",
  interfaces: [
    { name: "br0", mac: "aa:aa:aa:aa:aa:aa" },
    { name: "veth1", mac: "bb:bb:bb:bb:bb:bb" },
    { name: "eth0", mac: "cc:cc:cc:cc:cc:cc", sandbox: "/run/netns/x" },
  ],
  ips: [{ interface: 2, address: "10.1.0.5/24", gateway: "10.1.0.1" }],
};

/** A runner whose plugins are recorded calls answering `answer(type, env, stdin)`. */
async function fakeRunner(
  answer: (type: string, env: Record<string, string>, stdin: Record<string, unknown>) => {
    code?: number;
    stdout: string;
  },
) {
  const dir = await Deno.makeTempDir();
  for (const type of ["bridge", "portmap"]) await Deno.writeTextFile(`${dir}/${type}`, "");
  const calls: Array<
    { type: string; env: Record<string, string>; stdin: Record<string, unknown> }
  > = [];
  const exec: PluginExec = (path, input) => {
    const type = path.slice(path.lastIndexOf("/") + 1);
    const stdin = JSON.parse(input.stdin);
    calls.push({ type, env: input.env, stdin });
    const out = answer(type, input.env, stdin);
    return Promise.resolve({ code: out.code ?? 0, stdout: out.stdout, stderr: "" });
  };
  return {
    runner: new CniRunner({ binDirs: ["/nonexistent", dir], exec }),
    calls,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("CniRunner.add() runs the list in order with the CNI environment and prevResult", async () => {
  await using fake = await fakeRunner(() => ({ stdout: JSON.stringify(RESULT) }));
  const mappings = [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }];
  const result = await fake.runner.add(LIST, {
    containerId: "c1",
    netns: "/run/netns/x",
    ifName: "eth0",
    args: { IP: "10.1.0.5" },
    capabilityArgs: { portMappings: mappings },
  });
  assert.deepEqual(fake.calls.map((c) => c.type), ["bridge", "portmap"]);
  const [bridge, portmap] = fake.calls;
  assert.equal(bridge!.env.CNI_COMMAND, "ADD");
  assert.equal(bridge!.env.CNI_CONTAINERID, "c1");
  assert.equal(bridge!.env.CNI_NETNS, "/run/netns/x");
  assert.equal(bridge!.env.CNI_IFNAME, "eth0");
  assert.equal(bridge!.env.CNI_ARGS, "IgnoreUnknown=1;IP=10.1.0.5");
  assert.match(bridge!.env.CNI_PATH!, /^\/nonexistent:/);
  assert.equal(bridge!.stdin.name, "net1");
  assert.equal(bridge!.stdin.cniVersion, "1.0.0");
  // Only the plugin declaring the capability gets its runtime values; only later ones a result.
  assert.equal(bridge!.stdin.runtimeConfig, undefined);
  assert.equal(bridge!.stdin.prevResult, undefined);
  assert.deepEqual(portmap!.stdin.runtimeConfig, { portMappings: mappings });
  assert.equal((portmap!.stdin.prevResult as { ips: unknown[] }).ips.length, 1);
  assert.deepEqual(containerAddress(result, "eth0"), {
    address: "10.1.0.5/24",
    gateway: "10.1.0.1",
    mac: "cc:cc:cc:cc:cc:cc",
  });
});

Deno.test("CniRunner.del() runs every plugin in reverse, then throws the first failure", async () => {
  await using fake = await fakeRunner((type) =>
    type === "portmap"
      ? { code: 1, stdout: JSON.stringify({ code: 999, msg: "iptables broke", details: "x" }) }
      : { stdout: "" }
  );
  await assert.rejects(
    () =>
      fake.runner.del(LIST, { containerId: "c1", netns: "", ifName: "eth0" }, parseResult(RESULT)),
    (err) =>
      err instanceof CniError && err.code === 999 &&
      /portmap failed: iptables broke \(x\)/.test(err.message),
  );
  assert.deepEqual(fake.calls.map((c) => [c.type, c.env.CNI_COMMAND]), [["portmap", "DEL"], [
    "bridge",
    "DEL",
  ]]);
  assert.ok(fake.calls[1]!.stdin.prevResult);
});

Deno.test("CniRunner surfaces a plugin's plain output and a missing plugin", async () => {
  await using fake = await fakeRunner(() => ({ code: 2, stdout: "not json" }));
  await assert.rejects(
    () => fake.runner.add(LIST, { containerId: "c", netns: "/x", ifName: "eth0" }),
    /CNI plugin bridge failed: not json/,
  );
  const none = new CniRunner({ binDirs: ["/nonexistent"] });
  await assert.rejects(() => none.find("bridge"), /CNI plugin bridge not found in \/nonexistent/);
  await assert.rejects(() => none.find("../bin/sh"), /invalid CNI plugin type/);
});

Deno.test("parseResult() reads CNI 0.4.0 results (with ips[].version)", () => {
  const result = parseResult({
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", mac: "cc:cc:cc:cc:cc:cc", sandbox: "/x" }],
    ips: [{ version: "4", interface: 0, address: "10.2.0.9/16", gateway: "10.2.0.1" }],
    dns: {},
  });
  assert.deepEqual(containerAddress(result, "eth0"), {
    address: "10.2.0.9/16",
    gateway: "10.2.0.1",
    mac: "cc:cc:cc:cc:cc:cc",
  });
  assert.throws(() => parseResult([]), /not a JSON object/);
});

Deno.test("CniRunner.check() runs the list in order, each plugin given the ADD's result", async () => {
  await using fake = await fakeRunner((type) =>
    type === "portmap"
      ? { code: 1, stdout: JSON.stringify({ code: 999, msg: "chain CNI-DN-x not found" }) }
      : { stdout: "" }
  );
  await assert.rejects(
    () =>
      fake.runner.check(
        LIST,
        { containerId: "c1", netns: "/x", ifName: "eth0" },
        parseResult(RESULT),
      ),
    /portmap failed: chain CNI-DN-x not found/,
  );
  assert.deepEqual(fake.calls.map((c) => [c.type, c.env.CNI_COMMAND]), [
    ["bridge", "CHECK"],
    ["portmap", "CHECK"],
  ]);
  assert.deepEqual((fake.calls[0]!.stdin.prevResult as { ips: unknown[] }).ips, RESULT.ips);
});
