import assert from "node:assert/strict";
import { allocationRange, bridgeConfList, bridgeMac } from "./bridge.ts";
import { parseSubnet } from "./cidr.ts";

const NETWORK = {
  name: "0123abcd",
  bridge: "pouch0123abcd",
  subnet: "10.10.0.0/24",
  gateway: "10.10.0.1",
  mtu: 1500,
  internal: false,
};

Deno.test("bridgeConfList() of an attachment with ports is bridge with host-local, then portmap", () => {
  const list = bridgeConfList(NETWORK, {
    ipamDir: "/home/ipam",
    iptables: true,
    ipForward: true,
    portMappings: true,
  });
  assert.equal(list.name, "0123abcd");
  assert.deepEqual(list.plugins.map((p) => p.type), ["bridge", "portmap"]);
  const bridge = list.plugins[0]!;
  assert.equal(bridge.bridge, "pouch0123abcd");
  assert.equal(bridge.isGateway, true);
  // The network's one rule masquerades (ensureMasquerade), not a chain per attachment.
  assert.equal(bridge.ipMasq, false);
  assert.deepEqual(bridge.ipam, {
    type: "host-local",
    ranges: [[{ subnet: "10.10.0.0/24", gateway: "10.10.0.1" }]],
    routes: [{ dst: "0.0.0.0/0" }],
    dataDir: "/home/ipam",
  });
  assert.deepEqual(list.plugins[1], {
    type: "portmap",
    capabilities: { portMappings: true },
    snat: true,
  });
});

Deno.test("bridgeConfList() of an internal network has no default route and no masquerade", () => {
  const list = bridgeConfList({ ...NETWORK, internal: true, ipRange: "10.10.0.128/25" }, {
    ipamDir: "/d",
    iptables: true,
    ipForward: false,
    portMappings: false,
    attachmentMasquerade: true,
  });
  const bridge = list.plugins[0]!;
  assert.equal(bridge.ipMasq, false);
  assert.equal(bridge.isGateway, false);
  const ipam = bridge.ipam as { routes: unknown[]; ranges: Array<Array<Record<string, string>>> };
  assert.deepEqual(ipam.routes, []);
  assert.equal(ipam.ranges[0]![0]!.rangeStart, "10.10.0.128");
  assert.equal(ipam.ranges[0]![0]!.rangeEnd, "10.10.0.254");
});

Deno.test("bridgeConfList() has portmap only for published ports, and with iptables", () => {
  const without = { ipamDir: "/d", iptables: false, ipForward: true, portMappings: true };
  assert.deepEqual(bridgeConfList(NETWORK, without).plugins.map((p) => p.type), ["bridge"]);
  assert.equal(bridgeConfList(NETWORK, without).plugins[0]!.ipMasq, false);
  const noPorts = { ipamDir: "/d", iptables: true, ipForward: true, portMappings: false };
  assert.deepEqual(bridgeConfList(NETWORK, noPorts).plugins.map((p) => p.type), ["bridge"]);
});

Deno.test("bridgeConfList() keeps the plugin's own masquerade for an earlier attachment's DEL", () => {
  const list = bridgeConfList(NETWORK, {
    ipamDir: "/d",
    iptables: true,
    ipForward: true,
    portMappings: false,
    attachmentMasquerade: true,
  });
  assert.equal(list.plugins[0]!.ipMasq, true);
});

Deno.test("allocationRange() keeps the network and broadcast addresses out", () => {
  assert.deepEqual(allocationRange(parseSubnet("10.0.0.0/24"), parseSubnet("10.0.0.0/24")), {
    rangeStart: "10.0.0.1",
    rangeEnd: "10.0.0.254",
  });
  assert.deepEqual(allocationRange(parseSubnet("10.0.0.0/16"), parseSubnet("10.0.5.0/24")), {
    rangeStart: "10.0.5.0",
    rangeEnd: "10.0.5.255",
  });
});

Deno.test("bridgeMac() is a stable, locally administered unicast address per name", () => {
  assert.equal(bridgeMac("p0"), bridgeMac("p0"));
  assert.notEqual(bridgeMac("p0"), bridgeMac("p1"));
  assert.match(bridgeMac("p0"), /^02:42(:[0-9a-f]{2}){4}$/);
});
