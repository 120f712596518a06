import assert from "node:assert/strict";
import { isConflict, isInvalidArgument } from "../engine/errors.ts";
import { clashes, planPortMappings, type PortMapping, portsSummary, portsView } from "./ports.ts";

const always = () => true;
let next = 40000;
const counter = () => next++;

Deno.test("planPortMappings() maps bindings, with 0.0.0.0 meaning every address", () => {
  const mappings = planPortMappings({
    PortBindings: {
      "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }, {
        HostIp: "127.0.0.1",
        HostPort: "8081",
      }],
      "53/udp": [{ HostPort: "5353" }],
    },
  }, { taken: [], isFree: always, randomPort: counter });
  assert.deepEqual(mappings, [
    { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" },
    { hostPort: 8081, containerPort: 80, protocol: "tcp", hostIP: "127.0.0.1" },
    { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "" },
  ]);
});

Deno.test("planPortMappings() gives -P's exposed ports and empty host ports random ones", () => {
  next = 40000;
  const mappings = planPortMappings({
    PortBindings: { "80/tcp": [{ HostPort: "" }] },
    PublishAllPorts: true,
    ExposedPorts: { "80/tcp": {}, "443": {} },
  }, { taken: [], isFree: always, randomPort: counter });
  assert.deepEqual(mappings.map((m) => [m.containerPort, m.hostPort]), [[80, 40000], [443, 40001]]);
});

Deno.test("planPortMappings() refuses a port another container or process holds", () => {
  const taken: PortMapping[] = [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }];
  assert.throws(
    () =>
      planPortMappings(
        { PortBindings: { "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }] } },
        {
          taken,
          isFree: always,
        },
      ),
    (err) =>
      isConflict(err) && /127\.0\.0\.1:8080 failed: port is already allocated/.test(String(err)),
  );
  assert.throws(
    () =>
      planPortMappings({ PortBindings: { "80": [{ HostPort: "9000" }] } }, {
        taken: [],
        isFree: () => false,
      }),
    /port is already allocated/,
  );
  // The same host port on another protocol is free.
  assert.equal(
    planPortMappings({ PortBindings: { "80/udp": [{ HostPort: "8080" }] } }, {
      taken,
      isFree: always,
    }).length,
    1,
  );
});

Deno.test("planPortMappings() refuses bad ports, ranges and host addresses", () => {
  const bad: Array<Record<string, Array<{ HostIp?: string; HostPort?: string }>>> = [
    { "http/tcp": [{ HostPort: "80" }] },
    { "80/icmp": [{ HostPort: "80" }] },
    { "80/tcp": [{ HostPort: "8000-8010" }] },
    { "80/tcp": [{ HostPort: "70000" }] },
    { "80/tcp": [{ HostIp: "::1", HostPort: "80" }] },
  ];
  for (const bindings of bad) {
    assert.throws(
      () => planPortMappings({ PortBindings: bindings }, { taken: [], isFree: always }),
      (err) => isInvalidArgument(err),
      JSON.stringify(bindings),
    );
  }
});

Deno.test("clashes() compares host address, port and protocol", () => {
  const m = (hostIP: string, hostPort = 80, protocol: "tcp" | "udp" = "tcp") => ({
    hostIP,
    hostPort,
    protocol,
    containerPort: 1,
  });
  assert.ok(clashes(m(""), m("127.0.0.1")));
  assert.ok(!clashes(m("127.0.0.1"), m("127.0.0.2")));
  assert.ok(!clashes(m(""), m("", 81)));
  assert.ok(!clashes(m(""), m("", 80, "udp")));
});

Deno.test("portsView() and portsSummary() show published and exposed-only ports", () => {
  const mappings: PortMapping[] = [{
    hostPort: 8080,
    containerPort: 80,
    protocol: "tcp",
    hostIP: "",
  }];
  const exposed = { "80/tcp": {}, "443/tcp": {} };
  assert.deepEqual(portsView(exposed, mappings), {
    "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }],
    "443/tcp": null,
  });
  assert.deepEqual(portsSummary(exposed, mappings), [
    { PrivatePort: 443, Type: "tcp" },
    { IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp" },
  ]);
});
