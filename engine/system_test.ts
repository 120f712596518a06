import assert from "node:assert/strict";
import type { ContainerManager } from "./container.ts";
import type { Containerd } from "./containerd.ts";
import type { DaemonConfig } from "./config.ts";
import type { ImageManager } from "./image.ts";
import { SystemInfo } from "./system.ts";

/** A containerd client that answers only `version()`, counting the calls; `down` makes it fail. */
function fakeClient() {
  const state = { asked: 0, down: false, version: "1.6.20" };
  const client = {
    version: () => {
      state.asked++;
      if (state.down) return Promise.reject(new Error("connection refused"));
      return Promise.resolve({ version: state.version, revision: "r1" });
    },
  } as unknown as Containerd;
  return { client, state };
}

function systemInfo(client: Containerd, containerdPid?: () => number): SystemInfo {
  return new SystemInfo({} as DaemonConfig, {
    client,
    containers: {} as ContainerManager,
    images: {} as ImageManager,
    containerdPid,
  });
}

function containerdOf(answer: Record<string, unknown>): unknown {
  return (answer.Components as Array<{ Name: string; Version: string }>)
    .find((c) => c.Name === "containerd")?.Version;
}

Deno.test("/version asks a supervised containerd once per process", async () => {
  const { client, state } = fakeClient();
  let pid = 100;
  const system = systemInfo(client, () => pid);
  assert.equal(containerdOf(await system.version()), "1.6.20");
  assert.equal(containerdOf(await system.version()), "1.6.20");
  assert.equal(state.asked, 1);
  // A restarted containerd (a new PID) may be another version: asked again.
  pid = 101;
  state.version = "1.6.21";
  assert.equal(containerdOf(await system.version()), "1.6.21");
  assert.equal(state.asked, 2);
});

Deno.test("/version asks a host's containerd every time, and keeps no failure", async () => {
  const { client, state } = fakeClient();
  const host = systemInfo(client);
  await host.version();
  await host.version();
  assert.equal(state.asked, 2);

  const supervised = fakeClient();
  const system = systemInfo(supervised.client, () => 7);
  supervised.state.down = true;
  assert.equal(containerdOf(await system.version()), "");
  supervised.state.down = false;
  assert.equal(containerdOf(await system.version()), "1.6.20");
  assert.equal(supervised.state.asked, 2);
});
