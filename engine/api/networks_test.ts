import assert from "node:assert/strict";
import { conflict, forbidden, notFound } from "../errors.ts";
import { Logger } from "../log.ts";
import type { ContainersBackend } from "./containers.ts";
import { createApi } from "./mod.ts";
import type {
  NetworkConnectRequest,
  NetworkCreateRequest,
  NetworkDisconnectRequest,
  NetworkResource,
  NetworksBackend,
} from "./networks.ts";

function network(name: string, driver: string, subnet: string): NetworkResource {
  return {
    Name: name,
    Id: name.padEnd(64, "0"),
    Created: "2026-01-01T00:00:00.000Z",
    Scope: "local",
    Driver: driver,
    EnableIPv6: false,
    IPAM: {
      Driver: "default",
      Options: null,
      Config: subnet ? [{ Subnet: subnet, Gateway: "" }] : [],
    },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
  };
}

/**
 * An in-memory network manager: the predefined bridge/host/none networks, user networks that
 * may not be removed while a container is attached, and a record of the calls made.
 */
class FakeNetworks implements NetworksBackend {
  networks: NetworkResource[] = [
    network("bridge", "bridge", "192.168.5.0/24"),
    network("host", "host", ""),
    network("none", "null", ""),
  ];
  calls: string[] = [];

  #find(idOrName: string): NetworkResource {
    const found = this.networks.find((n) => n.Name === idOrName || n.Id.startsWith(idOrName));
    if (!found) throw notFound(`network ${idOrName} not found`);
    return found;
  }

  list(filters: Record<string, string[]>): NetworkResource[] {
    this.calls.push(`list ${JSON.stringify(filters)}`);
    const names = filters.name;
    return this.networks.filter((n) => !names || names.some((name) => n.Name.includes(name)));
  }

  inspect(idOrName: string): NetworkResource {
    return this.#find(idOrName);
  }

  create(request: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    this.calls.push(`create ${JSON.stringify(request)}`);
    if (this.networks.some((n) => n.Name === request.Name)) {
      return Promise.reject(conflict(`network with name ${request.Name} already exists`));
    }
    const created = network(
      request.Name,
      request.Driver ?? "bridge",
      request.IPAM?.Config?.[0]?.Subnet ?? "",
    );
    this.networks.push(created);
    return Promise.resolve({ Id: created.Id, Warning: "" });
  }

  remove(idOrName: string): Promise<void> {
    this.calls.push(`remove ${idOrName}`);
    const found = this.#find(idOrName);
    if (["bridge", "host", "none"].includes(found.Name)) {
      return Promise.reject(
        forbidden(`${found.Name} is a pre-defined network and cannot be removed`),
      );
    }
    if (Object.keys(found.Containers).length > 0) {
      return Promise.reject(
        conflict(
          `error while removing network: network ${found.Name} id ${found.Id} has active endpoints`,
        ),
      );
    }
    this.networks = this.networks.filter((n) => n !== found);
    return Promise.resolve();
  }

  prune(filters: Record<string, string[]>): Promise<{ NetworksDeleted: string[] }> {
    this.calls.push(`prune ${JSON.stringify(filters)}`);
    const unused = this.networks.filter((n) =>
      !["bridge", "host", "none"].includes(n.Name) && Object.keys(n.Containers).length === 0
    );
    this.networks = this.networks.filter((n) => !unused.includes(n));
    return Promise.resolve({ NetworksDeleted: unused.map((n) => n.Name) });
  }

  connect(idOrName: string, request: NetworkConnectRequest): Promise<void> {
    this.calls.push(`connect ${idOrName} ${JSON.stringify(request)}`);
    const found = this.#find(idOrName);
    if (request.Container === "missing") {
      return Promise.reject(notFound(`No such container: ${request.Container}`));
    }
    found.Containers[request.Container.padEnd(64, "c")] = {
      Name: request.Container,
      EndpointID: "e".repeat(64),
      MacAddress: "02:42:c0:a8:05:02",
      IPv4Address: request.EndpointConfig?.IPAMConfig?.IPv4Address ?? "10.1.0.2/24",
      IPv6Address: "",
    };
    return Promise.resolve();
  }

  disconnect(idOrName: string, request: NetworkDisconnectRequest): Promise<void> {
    this.calls.push(`disconnect ${idOrName} ${JSON.stringify(request)}`);
    const found = this.#find(idOrName);
    const key = Object.keys(found.Containers).find((k) =>
      found.Containers[k]!.Name === request.Container
    );
    if (!key) {
      return Promise.reject(
        forbidden(`container ${request.Container} is not connected to network ${found.Name}`),
      );
    }
    delete found.Containers[key];
    return Promise.resolve();
  }
}

function fakeApp() {
  const networks = new FakeNetworks();
  const app = createApi({
    containers: {} as ContainersBackend,
    images: { images: {} as never, imageUser: () => undefined },
    system: { version: () => Promise.resolve({}), info: () => Promise.resolve({}) },
    networks,
    log: new Logger("error", () => {}),
  });
  const post = (path: string, body?: unknown) =>
    app.request(path, {
      method: "POST",
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    });
  return { app, networks, post };
}

Deno.test("GET /networks lists networks with and without the /v1.NN prefix, passing filters", async () => {
  const { app, networks } = fakeApp();
  for (const path of ["/networks", "/v1.41/networks", "/v1.24/networks"]) {
    const response = await app.request(path);
    assert.equal(response.status, 200, path);
    const names = (await response.json()).map((n: NetworkResource) => n.Name);
    assert.deepEqual(names, ["bridge", "host", "none"]);
  }
  const filtered = await app.request(
    `/v1.41/networks?filters=${encodeURIComponent('{"name":{"bri":true},"type":["builtin"]}')}`,
  );
  assert.deepEqual((await filtered.json()).map((n: NetworkResource) => n.Name), ["bridge"]);
  assert.equal(networks.calls.at(-1), 'list {"name":["bri"],"type":["builtin"]}');
  const bad = await app.request(`/networks?filters=${encodeURIComponent("{nope")}`);
  assert.equal(bad.status, 400);
});

Deno.test("GET /networks/{id} answers the network by name or ID prefix, 404 otherwise", async () => {
  const { app } = fakeApp();
  const byName = await app.request("/v1.41/networks/bridge?verbose=false");
  assert.equal(byName.status, 200);
  const body = await byName.json();
  assert.equal(body.Name, "bridge");
  assert.deepEqual(body.IPAM.Config, [{ Subnet: "192.168.5.0/24", Gateway: "" }]);
  const byId = await app.request("/networks/host0000");
  assert.equal((await byId.json()).Name, "host");
  const missing = await app.request("/v1.41/networks/nope");
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { message: "network nope not found" });
  const otherScope = await app.request("/networks/bridge?scope=swarm");
  assert.equal(otherScope.status, 404);
  assert.deepEqual(await otherScope.json(), { message: "network bridge not found" });
  assert.equal((await app.request("/networks/bridge?scope=local")).status, 200);
});

Deno.test("POST /networks/create answers 201 {Id, Warning} with a checked request", async () => {
  const { networks, post } = fakeApp();
  // What Docker's CLI sends: nulls for empty maps and lists, "" for an absent driver.
  const response = await post("/v1.41/networks/create", {
    Name: "front",
    CheckDuplicate: true,
    Driver: "",
    Scope: "",
    EnableIPv6: false,
    IPAM: {
      Driver: "default",
      Options: null,
      Config: [{ Subnet: "10.1.0.0/24", IPRange: "10.1.0.128/25", Gateway: "10.1.0.1" }],
    },
    Internal: true,
    Attachable: false,
    Ingress: false,
    ConfigOnly: false,
    ConfigFrom: null,
    Options: { "com.docker.network.driver.mtu": "1400" },
    Labels: null,
  });
  assert.equal(response.status, 201);
  assert.deepEqual(await response.json(), { Id: "front".padEnd(64, "0"), Warning: "" });
  const sent = JSON.parse(networks.calls.at(-1)!.slice("create ".length));
  assert.deepEqual(sent, {
    Name: "front",
    CheckDuplicate: true,
    Internal: true,
    Attachable: false,
    Ingress: false,
    IPAM: {
      Driver: "default",
      Config: [{ Subnet: "10.1.0.0/24", IPRange: "10.1.0.128/25", Gateway: "10.1.0.1" }],
    },
    EnableIPv6: false,
    Options: { "com.docker.network.driver.mtu": "1400" },
  });
  const again = await post("/networks/create", { Name: "front" });
  assert.equal(again.status, 409);
  assert.deepEqual(await again.json(), { message: "network with name front already exists" });
});

Deno.test("POST /networks/create refuses bad bodies with 400 before calling the manager", async () => {
  const { app, networks, post } = fakeApp();
  const cases: Array<[unknown, string]> = [
    [{}, "network name is required"],
    [{ Name: "" }, "network name is required"],
    [{ Name: "-x" }, 'invalid network name "-x": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ Name: "a/b" }, 'invalid network name "a/b": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    [{ Name: "n", Internal: "yes" }, "invalid Internal: must be a boolean"],
    [{ Name: "n", Labels: { a: 1 } }, "invalid Labels.a: must be a string"],
    [{ Name: "n", IPAM: { Config: {} } }, "invalid IPAM.Config: must be an array"],
    [
      { Name: "n", IPAM: { Config: [{ Subnet: 10 }] } },
      "invalid IPAM.Config[0].Subnet: must be a string",
    ],
  ];
  for (const [body, message] of cases) {
    const response = await post("/networks/create", body);
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.deepEqual(await response.json(), { message }, JSON.stringify(body));
  }
  const empty = await app.request("/networks/create", { method: "POST" });
  assert.equal(empty.status, 400);
  const malformed = await app.request("/networks/create", { method: "POST", body: "{x" });
  assert.equal(malformed.status, 400);
  // A one-character name is a valid name.
  assert.equal((await post("/networks/create", { Name: "a" })).status, 201);
  assert.equal(networks.calls.filter((c) => c.startsWith("create")).length, 1);
});

Deno.test("DELETE /networks/{id} answers 204, 404, 409 with containers, 403 for predefined", async () => {
  const { app, networks, post } = fakeApp();
  await post("/networks/create", { Name: "back" });
  await post("/networks/create", { Name: "used" });
  await post("/networks/used/connect", { Container: "web" });
  const removed = await app.request("/v1.41/networks/back", { method: "DELETE" });
  assert.equal(removed.status, 204);
  assert.equal(await removed.text(), "");
  assert.ok(!networks.networks.some((n) => n.Name === "back"));
  assert.equal((await app.request("/networks/back", { method: "DELETE" })).status, 404);
  const busy = await app.request("/networks/used", { method: "DELETE" });
  assert.equal(busy.status, 409);
  assert.match((await busy.json()).message, /has active endpoints/);
  const predefined = await app.request("/networks/bridge", { method: "DELETE" });
  assert.equal(predefined.status, 403);
  assert.deepEqual(await predefined.json(), {
    message: "bridge is a pre-defined network and cannot be removed",
  });
});

Deno.test("POST /networks/prune answers {NetworksDeleted} and passes its filters", async () => {
  const { networks, post } = fakeApp();
  await post("/networks/create", { Name: "a1" });
  await post("/networks/create", { Name: "a2" });
  await post("/networks/a2/connect", { Container: "web" });
  const response = await post(
    `/v1.41/networks/prune?filters=${encodeURIComponent('{"label":["x=y"]}')}`,
  );
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { NetworksDeleted: ["a1"] });
  assert.equal(networks.calls.at(-1), 'prune {"label":["x=y"]}');
});

Deno.test("POST /networks/{id}/connect and /disconnect answer 200 and map errors", async () => {
  const { networks, post } = fakeApp();
  await post("/networks/create", { Name: "front", IPAM: { Config: [{ Subnet: "10.1.0.0/24" }] } });
  // Docker's CLI sends every EndpointSettings field, empty ones as "" or null.
  const connected = await post("/v1.41/networks/front/connect", {
    Container: "web",
    EndpointConfig: {
      IPAMConfig: { IPv4Address: "10.1.0.9", IPv6Address: "", LinkLocalIPs: null },
      Links: null,
      Aliases: ["www"],
      NetworkID: "",
    },
  });
  assert.equal(connected.status, 200);
  assert.equal(
    networks.calls.at(-1),
    'connect front {"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.1.0.9"},"Aliases":["www"]}}',
  );
  const bare = await post("/networks/front/connect", {
    Container: "db",
    EndpointConfig: { IPAMConfig: { IPv4Address: "" }, Aliases: null },
  });
  assert.equal(bare.status, 200);
  assert.equal(networks.calls.at(-1), 'connect front {"Container":"db","EndpointConfig":{}}');
  const noContainer = await post("/networks/front/connect", {});
  assert.equal(noContainer.status, 400);
  const badAliases = await post("/networks/front/connect", {
    Container: "web",
    EndpointConfig: { Aliases: "www" },
  });
  assert.equal(badAliases.status, 400);
  const missing = await post("/networks/front/connect", { Container: "missing" });
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { message: "No such container: missing" });
  const noNetwork = await post("/networks/nope/connect", { Container: "web" });
  assert.equal(noNetwork.status, 404);

  const disconnected = await post("/v1.41/networks/front/disconnect", {
    Container: "web",
    Force: true,
  });
  assert.equal(disconnected.status, 200);
  assert.equal(networks.calls.at(-1), 'disconnect front {"Container":"web","Force":true}');
  const again = await post("/networks/front/disconnect", { Container: "web" });
  assert.equal(again.status, 403);
  const badForce = await post("/networks/front/disconnect", { Container: "db", Force: "1" });
  assert.equal(badForce.status, 400);
});

Deno.test("the /networks routes are absent without a network manager", async () => {
  const app = createApi({
    containers: {} as ContainersBackend,
    images: { images: {} as never, imageUser: () => undefined },
    system: { version: () => Promise.resolve({}), info: () => Promise.resolve({}) },
    log: new Logger("error", () => {}),
  });
  const response = await app.request("/v1.41/networks");
  assert.equal(response.status, 404);
});
