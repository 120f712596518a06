import assert from "node:assert/strict";
import { conflict, notFound } from "../errors.ts";
import type { ExecInspect, ExecStartOptions } from "../exec.ts";
import { Logger } from "../log.ts";
import type { ContainersBackend } from "./containers.ts";
import type { ExecBackend } from "./exec.ts";
import { createApi } from "./mod.ts";

const ID = "e".repeat(64);

function inspect(): ExecInspect {
  return {
    ID,
    Running: false,
    ExitCode: null,
    ProcessConfig: { tty: false, entrypoint: "true", arguments: [], privileged: false, user: "" },
    OpenStdin: false,
    OpenStderr: true,
    OpenStdout: true,
    CanRemove: false,
    ContainerID: "c".repeat(64),
    DetachKeys: "",
    Pid: 0,
  };
}

/** The app over a fake exec backend that records its calls. */
function fakeApp() {
  const calls: string[] = [];
  const exec: ExecBackend = {
    create: (ref, config) => {
      calls.push(`create ${ref} ${JSON.stringify(config.Cmd)}`);
      if (ref === "stopped") throw conflict(`Container ${ref} is not running`);
      return { Id: ID };
    },
    checkStart: (id) => {
      if (id !== ID) throw notFound(`No such exec instance: ${id}`);
      return inspect();
    },
    start: (id: string, options?: ExecStartOptions) => {
      calls.push(`start ${id} detach=${options?.detach}`);
      return { detach: () => {}, started: Promise.resolve() };
    },
    inspect: (id) => {
      if (id !== ID) throw notFound(`No such exec instance: ${id}`);
      return inspect();
    },
    resize: (id, size) => {
      calls.push(`resize ${id} ${size.width}x${size.height}`);
      return Promise.resolve();
    },
    idsOf: () => [ID],
  };
  const app = createApi({
    containers: {} as ContainersBackend,
    exec,
    images: { images: {} as never, imageUser: () => undefined },
    system: {} as never,
    log: new Logger("error", () => {}),
  });
  return { app, calls };
}

Deno.test("POST /containers/{id}/exec answers 201 with the ID; errors keep their status", async () => {
  const { app, calls } = fakeApp();
  const created = await app.request("/v1.41/containers/web/exec", {
    method: "POST",
    body: JSON.stringify({ Cmd: ["ls"] }),
  });
  assert.equal(created.status, 201);
  assert.deepEqual(await created.json(), { Id: ID });
  assert.deepEqual(calls, ['create web ["ls"]']);
  const stopped = await app.request("/containers/stopped/exec", {
    method: "POST",
    body: JSON.stringify({ Cmd: ["ls"] }),
  });
  assert.equal(stopped.status, 409);
  const empty = await app.request("/containers/web/exec", { method: "POST" });
  assert.equal(empty.status, 400);
});

Deno.test("POST /exec/{id}/start: detached is a plain 200, attached needs an upgrade", async () => {
  const { app, calls } = fakeApp();
  const detached = await app.request(`/exec/${ID}/start`, {
    method: "POST",
    body: JSON.stringify({ Detach: true }),
  });
  assert.equal(detached.status, 200);
  assert.deepEqual(calls, [`start ${ID} detach=true`]);
  const plain = await app.request(`/exec/${ID}/start`, { method: "POST", body: "{}" });
  assert.equal(plain.status, 400);
  assert.match((await plain.json()).message, /connection upgrade/);
  const unknown = await app.request("/exec/nosuch/start", { method: "POST", body: "{}" });
  assert.equal(unknown.status, 404);
  const malformed = await app.request(`/exec/${ID}/start`, { method: "POST", body: "{" });
  assert.equal(malformed.status, 400);
});

Deno.test("GET /exec/{id}/json and POST /exec/{id}/resize", async () => {
  const { app, calls } = fakeApp();
  const info = await app.request(`/exec/${ID}/json`);
  assert.equal(info.status, 200);
  assert.equal((await info.json()).ExitCode, null);
  assert.equal((await app.request("/exec/nosuch/json")).status, 404);
  const resized = await app.request(`/exec/${ID}/resize?h=30&w=100`, { method: "POST" });
  assert.equal(resized.status, 200);
  assert.deepEqual(calls, [`resize ${ID} 100x30`]);
  const bad = await app.request(`/exec/${ID}/resize?h=-1&w=100`, { method: "POST" });
  assert.equal(bad.status, 400);
});
