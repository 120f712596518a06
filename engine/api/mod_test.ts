import assert from "node:assert/strict";
import type { Container } from "../container.ts";
import { notFound, notModified } from "../errors.ts";
import { Logger } from "../log.ts";
import { createApi } from "./mod.ts";
import type { ContainersBackend } from "./containers.ts";
import { MAX_JSON_BODY } from "./http.ts";

function container(name: string, status: Container["state"]["Status"]): Container {
  return {
    id: name.padEnd(64, "0"),
    name,
    created: "2026-01-01T00:00:00.000Z",
    image: "busybox",
    imageId: "sha256:" + "a".repeat(64),
    config: { Image: "busybox", Labels: { tier: name } },
    hostConfig: {},
    path: "sleep",
    args: ["100"],
    state: {
      Status: status,
      Pid: 0,
      ExitCode: 0,
      Error: "",
      OOMKilled: false,
      StartedAt: "2026-01-01T00:00:00.000Z",
      FinishedAt: "2026-01-01T00:00:00.000Z",
    },
    restartCount: 0,
    runtime: "runc",
    snapshotter: "overlayfs",
    snapshotKey: name,
    phase: "ready",
  };
}

/** A fake backend: two containers, and a record of the calls made. */
function fakeApp() {
  const containers = [container("web", "running"), container("db", "exited")];
  const calls: string[] = [];
  const backend = {
    list: () => containers,
    get: (ref: string) => {
      const found = containers.find((c) => c.name === ref || c.id === ref);
      if (!found) throw notFound(`No such container: ${ref}`);
      return found;
    },
    start: (ref: string) => {
      calls.push(`start ${ref}`);
      if (backend.get(ref).state.Status === "running") throw notModified("already started");
      return Promise.resolve();
    },
    create: (body: unknown, options: { name?: string }) => {
      calls.push(`create ${options.name} ${JSON.stringify(body)}`);
      return Promise.resolve({ Id: "c".repeat(64), Warnings: [] });
    },
    dir: (id: string) => `/var/lib/pouch/containers/${id}`,
  } as unknown as ContainersBackend;
  const app = createApi({
    containers: backend,
    images: { images: {} as never, imageUser: () => undefined },
    system: { version: () => Promise.resolve({}), info: () => Promise.resolve({}) },
    log: new Logger("error", () => {}),
  });
  return { app, calls };
}

Deno.test("API serves the same routes with and without a /v1.NN prefix", async () => {
  const { app } = fakeApp();
  for (const path of ["/containers/json", "/v1.41/containers/json", "/v1.24/containers/json"]) {
    const response = await app.request(path);
    assert.equal(response.status, 200, path);
    assert.deepEqual((await response.json()).map((c: { Names: string[] }) => c.Names), [["/web"]]);
  }
});

Deno.test("API lists all containers with all=1 and filters by label and status", async () => {
  const { app } = fakeApp();
  const all = await (await app.request("/containers/json?all=1")).json();
  assert.equal(all.length, 2);
  const byLabel = await (await app.request(
    `/containers/json?all=true&filters=${encodeURIComponent('{"label":["tier=db"]}')}`,
  )).json();
  assert.deepEqual(byLabel.map((c: { Names: string[] }) => c.Names[0]), ["/db"]);
  const byStatus = await (await app.request(
    `/containers/json?filters=${encodeURIComponent('{"status":["exited"]}')}`,
  )).json();
  assert.deepEqual(byStatus.map((c: { State: string }) => c.State), ["exited"]);
  const bad = await app.request(`/containers/json?filters=${encodeURIComponent('{"nope":["x"]}')}`);
  assert.equal(bad.status, 400);
});

Deno.test("API maps error kinds to Docker's statuses and messages", async () => {
  const { app } = fakeApp();
  const missing = await app.request("/v1.41/containers/nope/json");
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { message: "No such container: nope" });
  const started = await app.request("/containers/web/start", { method: "POST" });
  assert.equal(started.status, 304);
  const unknown = await app.request("/v1.41/no/such/path");
  assert.equal(unknown.status, 404);
  assert.ok((await unknown.json()).message);
});

Deno.test("API parses create bodies explicitly, whatever the content type", async () => {
  const { app, calls } = fakeApp();
  const malformed = await app.request("/containers/create", { method: "POST", body: "{x" });
  assert.equal(malformed.status, 400);
  const empty = await app.request("/containers/create", { method: "POST" });
  assert.equal(empty.status, 400);
  const created = await app.request("/containers/create?name=web2", {
    method: "POST",
    body: JSON.stringify({ Image: "busybox" }),
  });
  assert.equal(created.status, 201);
  assert.deepEqual(calls, ['create web2 {"Image":"busybox"}']);
});

Deno.test("API refuses JSON bodies over the limit with 413, declared or streamed", async () => {
  const { app, calls } = fakeApp();
  const big = JSON.stringify({ Image: "busybox", Env: ["X=" + "x".repeat(MAX_JSON_BODY)] });
  const declared = await app.request("/containers/create", { method: "POST", body: big });
  assert.equal(declared.status, 413);
  assert.match((await declared.json()).message, /over the limit/);
  // Chunked: no length given, cut off as it arrives.
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(big));
      controller.close();
    },
  });
  const chunked = await app.request("/containers/create", { method: "POST", body: stream });
  assert.equal(chunked.status, 413);
  assert.deepEqual(calls, []);
});

Deno.test("API answers /_ping with the API version header", async () => {
  const { app } = fakeApp();
  const ping = await app.request("/_ping");
  assert.equal(await ping.text(), "OK");
  assert.equal(ping.headers.get("API-Version"), "1.41");
  const head = await app.request("/_ping", { method: "HEAD" });
  assert.equal(head.status, 200);
});
