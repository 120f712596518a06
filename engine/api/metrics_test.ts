import assert from "node:assert/strict";
import { notFound } from "../errors.ts";
import { Logger } from "../log.ts";
import { DaemonMetrics, parseMetrics } from "../metrics.ts";
import type { ContainersBackend } from "./containers.ts";
import { createApi } from "./mod.ts";

function metricsApp() {
  const metrics = new DaemonMetrics({ containerStates: () => ["running"], info: {} });
  const containers = {
    list: () => [],
    get: (ref: string) => {
      throw notFound(`No such container: ${ref}`);
    },
  } as unknown as ContainersBackend;
  const app = createApi({
    containers,
    images: { images: {} as never, imageUser: () => undefined },
    system: { version: () => Promise.resolve({}), info: () => Promise.resolve({}) },
    metrics,
    log: new Logger("error", () => {}),
  });
  return app;
}

Deno.test("GET /metrics counts requests by route template and status, versioned or not", async () => {
  const app = metricsApp();
  await app.request("/_ping");
  await app.request("/v1.41/_ping");
  await app.request("/containers/abc/json");
  await app.request("/v1.41/containers/def/json");
  await app.request("/no/such/path");
  const response = await app.request("/metrics");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("Content-Type") ?? "", /^text\/plain; version=0\.0\.4/);
  const samples = parseMetrics(await response.text());
  const requests = samples.filter((s) => s.name === "pouch_api_requests_total");
  const count = (route: string, status: string) =>
    requests.find((s) => s.labels.route === route && s.labels.status === status)?.value;
  assert.equal(count("/_ping", "200"), 2);
  assert.equal(count("/containers/:id/json", "404"), 2);
  assert.equal(count("unmatched", "404"), 1);
  const latency = samples.find((s) =>
    s.name === "pouch_api_request_duration_seconds_count" && s.labels.route === "/_ping"
  );
  assert.equal(latency?.value, 2);
  assert.equal(
    samples.find((s) => s.name === "pouch_containers" && s.labels.state === "running")?.value,
    1,
  );
});
