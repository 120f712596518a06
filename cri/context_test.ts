import assert from "node:assert/strict";
import type { Container } from "../engine/container.ts";
import { isInvalidArgument, isNotFound, notFound } from "../engine/errors.ts";
import { Logger } from "../engine/log.ts";
import { Store } from "../engine/store.ts";
import { type CriBackend, CriContext } from "./context.ts";
import type { SandboxRecord } from "./convert.ts";

const A = "a".repeat(64);
const AB = "ab" + "0".repeat(62);
const B = "b".repeat(64);

/** A context over an in-memory store and engine containers in the given states. */
function contextOf(engine: Record<string, Container["state"]["Status"]>): CriContext {
  const backend = {
    store: new Store(":memory:"),
    log: new Logger("error", () => {}),
    containers: {
      get(id: string) {
        const status = engine[id];
        if (!status) throw notFound(`No such container: ${id}`);
        return { id, state: { Status: status } } as Container;
      },
    },
  } as unknown as CriBackend;
  return new CriContext(backend, { sandboxImage: "pause", podNetworking: true, imageFsPath: "/" });
}

function sandbox(id: string): SandboxRecord {
  return {
    id,
    config: { metadata: { name: "p", namespace: "n", uid: id, attempt: 0 } },
    createdAt: 1,
    runtimeHandler: "",
    hostNetwork: true,
    state: "ready",
  };
}

Deno.test("CriContext finds sandboxes by ID or unique prefix", () => {
  const ctx = contextOf({});
  ctx.sandboxes.put(A, sandbox(A));
  ctx.sandboxes.put(AB, sandbox(AB));
  assert.equal(ctx.sandbox(A).id, A);
  assert.equal(ctx.sandbox("ab").id, AB);
  assert.throws(() => ctx.sandbox("a"), isInvalidArgument);
  assert.throws(() => ctx.sandbox("c"), isNotFound);
  assert.throws(() => ctx.sandbox(""), isInvalidArgument);
});

Deno.test("CriContext.restore() forgets what the engine lost and marks dead pods not ready", () => {
  const ctx = contextOf({ [A]: "running", [AB]: "exited", [B]: "running" });
  ctx.sandboxes.put(A, sandbox(A));
  ctx.sandboxes.put(AB, sandbox(AB));
  ctx.sandboxes.put("c".repeat(64), sandbox("c".repeat(64)));
  ctx.containers.put(B, { id: B, sandboxId: A, config: {}, createdAt: 1, logPath: "" });
  ctx.containers.put("d".repeat(64), {
    id: "d".repeat(64),
    sandboxId: A,
    config: {},
    createdAt: 1,
    logPath: "",
  });
  ctx.restore();
  assert.deepEqual(ctx.sandboxes.list().map((s) => [s.id, s.state]).sort(), [
    [A, "ready"],
    [AB, "notready"],
  ]);
  assert.deepEqual(ctx.containers.list().map((c) => c.id), [B]);
  assert.ok(ctx.sandboxReady(ctx.sandbox(A)));
  assert.ok(!ctx.sandboxReady(ctx.sandbox(AB)));
});
