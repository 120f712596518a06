import assert from "node:assert/strict";
import {
  contains,
  firstHost,
  formatIPv4,
  formatSubnet,
  isHostAddress,
  overlaps,
  parseCidr,
  parseIPv4,
  parseSubnet,
  pickSubnet,
  within,
} from "./cidr.ts";
import { isInvalidArgument } from "../engine/errors.ts";

Deno.test("parseIPv4() and formatIPv4() round-trip and refuse bad addresses", () => {
  assert.equal(formatIPv4(parseIPv4("192.168.5.1")!), "192.168.5.1");
  assert.equal(parseIPv4("255.255.255.255"), 0xffffffff);
  for (const bad of ["1.2.3", "1.2.3.256", "a.b.c.d", "1.2.3.4.5", ""]) {
    assert.equal(parseIPv4(bad), undefined, bad);
  }
});

Deno.test("parseCidr() clears host bits; parseSubnet() refuses them", () => {
  const { address, subnet } = parseCidr("192.168.5.1/24");
  assert.equal(formatIPv4(address), "192.168.5.1");
  assert.equal(formatSubnet(subnet), "192.168.5.0/24");
  assert.throws(() => parseSubnet("192.168.5.1/24"), /host bits set.*192\.168\.5\.0\/24/);
  assert.throws(() => parseCidr("10.0.0.0/33"), (err) => isInvalidArgument(err));
  assert.throws(() => parseCidr("10.0.0.300/8"), /invalid subnet/);
  assert.equal(formatSubnet(parseSubnet("0.0.0.0/0")), "0.0.0.0/0");
});

Deno.test("contains(), overlaps() and within() compare ranges", () => {
  const a = parseSubnet("10.1.0.0/16");
  assert.ok(contains(a, parseIPv4("10.1.255.255")!));
  assert.ok(!contains(a, parseIPv4("10.2.0.0")!));
  assert.ok(overlaps(a, parseSubnet("10.1.128.0/17")));
  assert.ok(overlaps(parseSubnet("10.0.0.0/8"), a));
  assert.ok(!overlaps(a, parseSubnet("10.2.0.0/16")));
  assert.ok(within(parseSubnet("10.1.2.0/24"), a));
  assert.ok(!within(parseSubnet("10.0.0.0/8"), a));
});

Deno.test("isHostAddress() excludes the network and broadcast addresses", () => {
  const s = parseSubnet("10.1.2.0/24");
  assert.ok(!isHostAddress(s, parseIPv4("10.1.2.0")!));
  assert.ok(isHostAddress(s, parseIPv4("10.1.2.1")!));
  assert.ok(!isHostAddress(s, parseIPv4("10.1.2.255")!));
  assert.ok(!isHostAddress(s, parseIPv4("10.1.3.1")!));
  assert.equal(formatIPv4(firstHost(s)), "10.1.2.1");
});

Deno.test("pickSubnet() takes the first block of the pools that overlaps nothing taken", () => {
  const pools = [parseSubnet("172.18.0.0/16"), parseSubnet("172.20.0.0/14")];
  const taken = [parseSubnet("172.18.0.0/16"), parseSubnet("172.20.0.0/16")];
  assert.equal(formatSubnet(pickSubnet(pools, { prefix: 16, taken })!), "172.21.0.0/16");
  const small = pickSubnet([parseSubnet("192.168.0.0/16")], {
    prefix: 20,
    taken: [parseSubnet("192.168.5.0/24")],
  });
  assert.equal(formatSubnet(small!), "192.168.16.0/20");
  assert.equal(
    pickSubnet([parseSubnet("10.0.0.0/24")], { prefix: 24, taken: [parseSubnet("10.0.0.0/8")] }),
    undefined,
  );
});
