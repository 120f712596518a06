import assert from "node:assert/strict";
import { type FakeRequest, startFakeServer } from "./_fake_server.ts";
import { runCli } from "./mod.ts";
import { buildIpamPools } from "./network.ts";
import { BufferWriter } from "./stream.ts";

const decoder = new TextDecoder();

async function cli(socket: string, args: string[]) {
  const stdout = new BufferWriter();
  const stderr = new BufferWriter();
  const code = await runCli(["-H", `unix://${socket}`, ...args], {
    stdout,
    stderr,
    stdin: { read: () => Promise.resolve(null) },
    env: { HOME: "/root" },
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

function json(req: FakeRequest): unknown {
  return JSON.parse(decoder.decode(req.body));
}

const BRIDGE = {
  Name: "bridge",
  Id: "b".repeat(64),
  Created: "2026-01-02T03:04:05.123456789Z",
  Scope: "local",
  Driver: "bridge",
  EnableIPv6: false,
  Internal: false,
  Labels: {},
};
const FRONT = {
  ...BRIDGE,
  Name: "front",
  Id: "f".repeat(64),
  Internal: true,
  Labels: { tier: "web" },
};

Deno.test("buildIpamPools() pairs ranges and gateways with their subnets as Docker does", () => {
  assert.deepEqual(
    buildIpamPools({
      subnets: ["10.1.0.0/16", "fd00::/64"],
      ipRanges: ["10.1.2.0/24"],
      gateways: ["fd00::1", "10.1.0.1"],
    }),
    [
      { Subnet: "10.1.0.0/16", IPRange: "10.1.2.0/24", Gateway: "10.1.0.1" },
      { Subnet: "fd00::/64", Gateway: "fd00::1" },
    ],
  );
  assert.deepEqual(buildIpamPools({ subnets: [], ipRanges: [], gateways: [] }), []);
  const refused: Array<[Parameters<typeof buildIpamPools>[0], string]> = [
    [
      { subnets: [], ipRanges: [], gateways: ["10.0.0.1"] },
      "every ip-range or gateway must have a corresponding subnet",
    ],
    [
      { subnets: ["10.0.0.0/8", "10.1.0.0/16"], ipRanges: [], gateways: [] },
      "multiple overlapping subnet configuration is not supported",
    ],
    [
      { subnets: ["10.0.0/8"], ipRanges: [], gateways: [] },
      "invalid subnet: invalid CIDR address: 10.0.0/8",
    ],
    [
      { subnets: ["10.1.0.0/16"], ipRanges: [], gateways: ["10.2.0.1"] },
      "no matching subnet for gateway 10.2.0.1",
    ],
    [
      { subnets: ["10.1.0.0/16"], ipRanges: ["10.3.0.0/24"], gateways: [] },
      "no matching subnet for range 10.3.0.0/24",
    ],
    [
      { subnets: ["10.1.0.0/16", "10.2.0.0/16"], ipRanges: [], gateways: ["10.1.0.1", "10.1.0.2"] },
      "cannot configure multiple gateways (10.1.0.2, 10.1.0.1) for the same subnet (10.1.0.0/16)",
    ],
  ];
  for (const [flags, message] of refused) {
    assert.throws(() => buildIpamPools(flags), { message }, message);
  }
});

Deno.test("network create sends Docker's request and prints the ID", async () => {
  await using server = await startFakeServer(() => ({
    status: 201,
    json: { Id: FRONT.Id, Warning: "" },
  }));
  const res = await cli(server.socketPath, [
    "network",
    "create",
    "--subnet",
    "10.1.0.0/24",
    "--gateway",
    "10.1.0.1",
    "--ip-range",
    "10.1.0.128/25",
    "--label",
    "tier=web",
    "-o",
    "com.docker.network.driver.mtu=1400",
    "--internal",
    "front",
  ]);
  assert.deepEqual(res, { code: 0, stdout: FRONT.Id + "\n", stderr: "" });
  const req = server.requests[0]!;
  assert.equal(`${req.method} ${req.path}`, "POST /v1.41/networks/create");
  assert.deepEqual(json(req), {
    Name: "front",
    Driver: "bridge",
    Internal: true,
    Attachable: false,
    EnableIPv6: false,
    IPAM: {
      Driver: "default",
      Config: [{ Subnet: "10.1.0.0/24", IPRange: "10.1.0.128/25", Gateway: "10.1.0.1" }],
      Options: {},
    },
    Options: { "com.docker.network.driver.mtu": "1400" },
    Labels: { tier: "web" },
  });
});

Deno.test("network create reports daemon and usage errors, exit 1", async () => {
  await using server = await startFakeServer(() => ({
    status: 409,
    json: { message: "network with name front already exists" },
  }));
  const taken = await cli(server.socketPath, ["network", "create", "front"]);
  assert.deepEqual(taken, {
    code: 1,
    stdout: "",
    stderr: "Error response from daemon: network with name front already exists\n",
  });
  const bad = await cli(server.socketPath, ["network", "create", "--gateway", "10.0.0.1", "x"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^every ip-range or gateway must have a corresponding subnet\n/);
  const noName = await cli(server.socketPath, ["network", "create"]);
  assert.equal(noName.code, 1);
  assert.match(noName.stderr, /"pouch network create" requires exactly 1 argument/);
  assert.equal(server.requests.length, 1);
});

Deno.test("network ls prints Docker's columns sorted by name, -q, --no-trunc, --format", async () => {
  await using server = await startFakeServer(() => ({ status: 200, json: [FRONT, BRIDGE] }));
  const table = await cli(server.socketPath, ["network", "ls"]);
  assert.equal(table.code, 0);
  assert.equal(
    table.stdout,
    [
      "NETWORK ID     NAME      DRIVER    SCOPE",
      `${"b".repeat(12)}   bridge    bridge    local`,
      `${"f".repeat(12)}   front     bridge    local`,
      "",
    ].join("\n"),
  );
  const quiet = await cli(server.socketPath, ["network", "ls", "-q", "--no-trunc"]);
  assert.equal(quiet.stdout, `${BRIDGE.Id}\n${FRONT.Id}\n`);
  const format = await cli(server.socketPath, [
    "network",
    "ls",
    "--filter",
    "driver=bridge",
    "--format",
    "{{.Name}} {{.Internal}} {{.Labels}} {{.CreatedAt}}",
  ]);
  assert.equal(
    format.stdout,
    "bridge false  2026-01-02 03:04:05 +0000 UTC\nfront true tier=web 2026-01-02 03:04:05 +0000 UTC\n",
  );
  assert.equal(
    server.requests.at(-1)!.query.get("filters"),
    JSON.stringify({ driver: { bridge: true } }),
  );
});

Deno.test("network inspect prints a JSON array, formats, and reports missing networks", async () => {
  await using server = await startFakeServer((req) =>
    req.path === "/v1.41/networks/front"
      ? { status: 200, json: FRONT }
      : { status: 404, json: { message: `network ${req.path.split("/").at(-1)} not found` } }
  );
  const both = await cli(server.socketPath, ["network", "inspect", "front", "nope"]);
  assert.equal(both.code, 1);
  assert.deepEqual(JSON.parse(both.stdout), [FRONT]);
  assert.equal(both.stderr, "Error: No such network: nope\n");
  const formatted = await cli(server.socketPath, [
    "network",
    "inspect",
    "-f",
    "{{.Name}}",
    "front",
  ]);
  assert.deepEqual(formatted, { code: 0, stdout: "front\n", stderr: "" });
});

Deno.test("network rm prints each name, goes on after an error and exits 1", async () => {
  await using server = await startFakeServer((req) => {
    if (req.path.endsWith("/busy")) {
      return { status: 409, json: { message: "network busy has active endpoints" } };
    }
    if (req.path.endsWith("/nope")) {
      return { status: 404, json: { message: "network nope not found" } };
    }
    return { status: 204 };
  });
  const res = await cli(server.socketPath, ["network", "rm", "a", "busy", "b"]);
  assert.deepEqual(res, {
    code: 1,
    stdout: "a\nb\n",
    stderr: "Error response from daemon: network busy has active endpoints\n",
  });
  assert.deepEqual(server.requests.map((r) => `${r.method} ${r.path}`), [
    "DELETE /v1.41/networks/a",
    "DELETE /v1.41/networks/busy",
    "DELETE /v1.41/networks/b",
  ]);
  const forced = await cli(server.socketPath, ["network", "rm", "-f", "nope", "a"]);
  assert.deepEqual(forced, { code: 0, stdout: "a\n", stderr: "" });
  const missing = await cli(server.socketPath, ["network", "remove", "nope"]);
  assert.deepEqual(missing, {
    code: 1,
    stdout: "",
    stderr: "Error response from daemon: network nope not found\n",
  });
});

Deno.test("network prune asks for -f and prints the deleted networks", async () => {
  await using server = await startFakeServer(() => ({
    status: 200,
    json: { NetworksDeleted: ["a1", "a2"] },
  }));
  const unconfirmed = await cli(server.socketPath, ["network", "prune"]);
  assert.equal(unconfirmed.code, 1);
  assert.equal(server.requests.length, 0);
  const res = await cli(server.socketPath, ["network", "prune", "-f", "--filter", "label=x"]);
  assert.deepEqual(res, { code: 0, stdout: "Deleted Networks:\na1\na2\n\n", stderr: "" });
  const req = server.requests[0]!;
  assert.equal(`${req.method} ${req.path}`, "POST /v1.41/networks/prune");
  assert.equal(req.query.get("filters"), JSON.stringify({ label: { x: true } }));
});

Deno.test("network connect and disconnect send Docker's bodies", async () => {
  await using server = await startFakeServer((req) =>
    req.path.includes("/nope/")
      ? { status: 404, json: { message: "network nope not found" } }
      : { status: 200 }
  );
  const connect = await cli(server.socketPath, [
    "network",
    "connect",
    "--ip",
    "10.1.0.9",
    "--alias",
    "www",
    "front",
    "web",
  ]);
  assert.deepEqual(connect, { code: 0, stdout: "", stderr: "" });
  assert.equal(server.requests[0]!.path, "/v1.41/networks/front/connect");
  assert.deepEqual(json(server.requests[0]!), {
    Container: "web",
    EndpointConfig: { IPAMConfig: { IPv4Address: "10.1.0.9" }, Aliases: ["www"] },
  });
  const disconnect = await cli(server.socketPath, ["network", "disconnect", "-f", "front", "web"]);
  assert.equal(disconnect.code, 0);
  assert.equal(server.requests[1]!.path, "/v1.41/networks/front/disconnect");
  assert.deepEqual(json(server.requests[1]!), { Container: "web", Force: true });
  const missing = await cli(server.socketPath, ["network", "connect", "nope", "web"]);
  assert.deepEqual(missing, {
    code: 1,
    stdout: "",
    stderr: "Error response from daemon: network nope not found\n",
  });
  const badIp = await cli(server.socketPath, ["network", "connect", "--ip", "x", "front", "web"]);
  assert.equal(badIp.code, 1);
  assert.match(badIp.stderr, /invalid argument "x" for "--ip" flag/);
  assert.equal(server.requests.length, 3);
});

Deno.test("port lists published ports sorted, IPv6 in brackets, one port or an error", async () => {
  await using server = await startFakeServer(() => ({
    status: 200,
    json: {
      NetworkSettings: {
        Ports: {
          "443/tcp": [{ HostIp: "0.0.0.0", HostPort: "8443" }, { HostIp: "::", HostPort: "8443" }],
          "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "32768" }],
          "53/udp": null,
        },
      },
    },
  }));
  const all = await cli(server.socketPath, ["port", "web"]);
  assert.deepEqual(all, {
    code: 0,
    stdout: "80/tcp -> 0.0.0.0:32768\n443/tcp -> 0.0.0.0:8443\n443/tcp -> [::]:8443\n",
    stderr: "",
  });
  const one = await cli(server.socketPath, ["port", "web", "80"]);
  assert.deepEqual(one, { code: 0, stdout: "0.0.0.0:32768\n", stderr: "" });
  const none = await cli(server.socketPath, ["port", "web", "53/udp"]);
  assert.deepEqual(none, {
    code: 1,
    stdout: "",
    stderr: "Error: No public port '53/udp' published for web\n",
  });
  const bad = await cli(server.socketPath, ["port", "web", "http"]);
  assert.deepEqual(bad, { code: 1, stdout: "", stderr: "Error: invalid port (http)\n" });
});
