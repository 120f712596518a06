import assert from "node:assert/strict";
import { isConflict, isInvalidArgument, isNotFound, kindOf, notFound } from "../engine/errors.ts";
import { Store } from "../engine/store.ts";
import { linkAddresses } from "./bridge.ts";
import { type EndpointRecord, NetworkManager, type SandboxRecord } from "./mod.ts";

/**
 * A manager on an in-memory store with its own bridge names and 10.x subnets (bridges are real
 * devices, removed by `close()`), and no containers.
 */
async function withManager(
  fn: (manager: NetworkManager, prefix: string, store: Store) => Promise<void>,
) {
  const home = await Deno.makeTempDir({ prefix: "pouch-net-" });
  const store = new Store(":memory:");
  const a = 100 + Math.floor(Math.random() * 140);
  const b = 4 * Math.floor(Math.random() * 50);
  const tag = crypto.randomUUID().slice(0, 6);
  const manager = new NetworkManager({
    store,
    home,
    bridge: { name: `pu${tag}`, bip: `10.${a}.${b}.1/24` },
    pools: [{ base: `10.${a}.${b}.0/22`, size: 24 }],
    containers: () => ({
      resolve: (ref) => {
        throw notFound(`No such container: ${ref}`);
      },
      nameOf: () => undefined,
    }),
  });
  try {
    await manager.init();
    await fn(manager, `10.${a}.${b}`, store);
  } finally {
    await manager.close();
    store.close();
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test("NetworkManager.init() makes bridge, host and none; bridge's device exists", async () => {
  await withManager(async (manager, prefix) => {
    const names = manager.list().map((n) => n.Name);
    assert.deepEqual(names, ["bridge", "host", "none"]);
    const bridge = manager.inspect("bridge");
    assert.deepEqual(bridge.IPAM.Config, [{ Subnet: `${prefix}.0/24`, Gateway: `${prefix}.1` }]);
    assert.equal(manager.inspect(bridge.Id.slice(0, 8)).Name, "bridge");
    assert.equal(manager.inspect("none").Driver, "null");
    const device = bridge.Options["com.docker.network.bridge.name"]!;
    assert.deepEqual(await linkAddresses(device), [`${prefix}.1/24`]);
    await assert.rejects(() => manager.remove("bridge"), (err) => kindOf(err) === "Forbidden");
    assert.throws(() => manager.inspect("nope"), (err) => isNotFound(err));
  });
});

Deno.test("NetworkManager.create() validates requests with Docker's statuses", async () => {
  await withManager(async (manager, prefix) => {
    const cases: Array<[Parameters<NetworkManager["create"]>[0], (err: unknown) => boolean]> = [
      [{}, isInvalidArgument],
      [{ Name: "-bad" }, isInvalidArgument],
      [{ Name: "bridge" }, isConflict],
      [{ Name: "x", Driver: "macvlan" }, isInvalidArgument],
      [{ Name: "x", EnableIPv6: true }, isInvalidArgument],
      [
        { Name: "x", IPAM: { Config: [{ Subnet: "10.0.0.0/24" }, { Subnet: "10.0.1.0/24" }] } },
        isInvalidArgument,
      ],
      [{ Name: "x", IPAM: { Config: [{ Subnet: `${prefix}.0/25` }] } }, isConflict],
      [{ Name: "x", IPAM: { Config: [{ Subnet: "10.99.0.1/24" }] } }, isInvalidArgument],
      [
        { Name: "x", IPAM: { Config: [{ Subnet: "10.99.0.0/24", Gateway: "10.98.0.1" }] } },
        isInvalidArgument,
      ],
      [
        { Name: "x", IPAM: { Config: [{ Subnet: "10.99.0.0/24", IPRange: "10.99.1.0/25" }] } },
        isInvalidArgument,
      ],
      [{ Name: "x", IPAM: { Config: [{ Gateway: "10.99.0.1" }] } }, isInvalidArgument],
    ];
    for (const [request, check] of cases) {
      await assert.rejects(() => manager.create(request), check, JSON.stringify(request));
    }
    assert.equal(manager.list().length, 3);
  });
});

Deno.test("NetworkManager creates, filters, prunes and removes user networks", async () => {
  await withManager(async (manager, prefix) => {
    // No subnet: the next free block of the pool (the default network holds the first).
    const auto = await manager.create({ Name: "auto", Labels: { tier: "web" } });
    const autoNet = manager.inspect(auto.Id);
    const [a, b] = prefix.split(".").slice(1).map(Number);
    assert.equal(autoNet.IPAM.Config[0]!.Subnet, `10.${a}.${b! + 1}.0/24`);
    assert.equal(autoNet.IPAM.Config[0]!.Gateway, `10.${a}.${b! + 1}.1`);
    const device = autoNet.Options["com.docker.network.bridge.name"]!;
    assert.deepEqual(await linkAddresses(device), [`10.${a}.${b! + 1}.1/24`]);
    await manager.create({ Name: "internal", Internal: true });
    await assert.rejects(() => manager.create({ Name: "auto" }), isConflict);

    assert.deepEqual(manager.list({ type: ["custom"] }).map((n) => n.Name), ["auto", "internal"]);
    assert.deepEqual(manager.list({ type: ["builtin"] }).length, 3);
    assert.deepEqual(manager.list({ label: ["tier=web"] }).map((n) => n.Name), ["auto"]);
    assert.deepEqual(manager.list({ name: ["int"] }).map((n) => n.Name), ["internal"]);
    assert.deepEqual(manager.list({ dangling: ["true"] }).length, 2);
    assert.deepEqual(manager.list({ driver: ["null"] }).map((n) => n.Name), ["none"]);
    assert.throws(() => manager.list({ nope: ["x"] }), isInvalidArgument);
    assert.equal(manager.inspect("internal").Internal, true);

    await manager.remove("auto");
    assert.equal(await linkAddresses(device), undefined);
    assert.deepEqual(await manager.prune({ label: ["tier=web"] }), { NetworksDeleted: [] });
    assert.deepEqual(await manager.prune(), { NetworksDeleted: ["internal"] });
    assert.deepEqual(manager.list().map((n) => n.Name), ["bridge", "host", "none"]);
    await assert.rejects(
      () => manager.connect("bridge", { Container: "ghost" }),
      /No such container: ghost/,
    );
  });
});

Deno.test("NetworkManager.settings() and portsSummary() follow endpoint changes", async () => {
  await withManager((manager, _prefix, store) => {
    const bridge = manager.inspect("bridge").Id;
    const sandboxes = store.bucket<SandboxRecord>("sandbox");
    const endpoints = store.bucket<EndpointRecord>("endpoint");
    const sandbox = (id: string): SandboxRecord => ({
      containerId: id,
      mode: "bridge",
      netns: `/run/netns/${id}`,
      dir: `/tmp/${id}`,
      hostname: id,
      domainname: "",
      extraHosts: [],
      dns: [],
      dnsSearch: [],
      dnsOptions: [],
      exposed: { "80/tcp": {} },
    });
    const endpoint = (id: string, hostPort: number): EndpointRecord => ({
      containerId: id,
      networkId: bridge,
      endpointId: `ep-${id}`,
      ifName: "eth0",
      phase: "ready",
      aliases: [],
      portMappings: [{ hostPort, containerPort: 80, protocol: "tcp", hostIP: "" }],
      address: "10.0.0.2/24",
      gateway: "10.0.0.1",
    });
    sandboxes.put("c1", sandbox("c1"));
    sandboxes.put("c2", sandbox("c2"));
    assert.deepEqual(manager.portsSummary("c1"), [{ PrivatePort: 80, Type: "tcp" }]);
    assert.deepEqual(manager.settings("c1").Networks, {});

    endpoints.put(`c1/${bridge}`, endpoint("c1", 8080));
    assert.deepEqual(manager.portsSummary("c1"), [
      { IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp" },
    ]);
    assert.equal(manager.settings("c1").Networks.bridge?.EndpointID, "ep-c1");
    assert.deepEqual(manager.portsSummary("c2"), [{ PrivatePort: 80, Type: "tcp" }]);

    endpoints.put(`c1/${bridge}`, endpoint("c1", 9090));
    assert.equal(manager.portsSummary("c1")[0]?.PublicPort, 9090);
    endpoints.delete(`c1/${bridge}`);
    assert.deepEqual(manager.settings("c1").Networks, {});
    assert.equal(manager.settings("c1").IPAddress, "");
    return Promise.resolve();
  });
});
