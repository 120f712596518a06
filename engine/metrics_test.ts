import assert from "node:assert/strict";
import { Counter, DaemonMetrics, Histogram, MetricsRegistry, parseMetrics } from "./metrics.ts";

Deno.test("Counter and Histogram render Prometheus' text format that parseMetrics() reads", () => {
  const registry = new MetricsRegistry();
  const counter = registry.register(new Counter("c_total", "A counter."));
  const histogram = registry.register(new Histogram("h_seconds", "A histogram.", [0.1, 1]));
  counter.inc({ route: '/a"b' });
  counter.inc({ route: '/a"b' }, 2);
  histogram.observe({ m: "GET" }, 0.05);
  histogram.observe({ m: "GET" }, 0.5);
  histogram.observe({ m: "GET" }, 5);
  const text = registry.render();
  assert.match(text, /^# HELP c_total A counter\.\n# TYPE c_total counter\n/);
  assert.match(text, /c_total\{route="\/a\\"b"\} 3\n/);
  const samples = parseMetrics(text);
  const find = (name: string, le?: string) =>
    samples.find((s) => s.name === name && (le === undefined || s.labels.le === le))?.value;
  assert.equal(samples.find((s) => s.name === "c_total")?.labels.route, '/a"b');
  assert.equal(find("h_seconds_bucket", "0.1"), 1);
  assert.equal(find("h_seconds_bucket", "1"), 2);
  assert.equal(find("h_seconds_bucket", "+Inf"), 3);
  assert.equal(find("h_seconds_count"), 3);
  assert.equal(find("h_seconds_sum"), 5.55);
});

Deno.test("MetricsRegistry refuses a name twice", () => {
  const registry = new MetricsRegistry();
  registry.register(new Counter("x_total", "x"));
  assert.throws(() => registry.register(new Counter("x_total", "x")), /twice/);
});

Deno.test("DaemonMetrics counts containers by state, requests, round trips and pulled bytes", () => {
  const metrics = new DaemonMetrics({
    containerStates: () => ["running", "running", "exited"],
    info: { version: "0.1.0" },
  });
  metrics.apiRequest({ method: "GET", route: "/containers/:id/json", status: 404 }, 0.002);
  metrics.containerdCall({ service: "Tasks", method: "Get" }, true);
  metrics.containerdCall({ service: "Tasks", method: "Get" }, false);
  metrics.pulled(100);
  metrics.pulled(23);
  const samples = parseMetrics(metrics.render());
  const value = (name: string, labels: Record<string, string> = {}) =>
    samples.find((s) =>
      s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
    )?.value;
  assert.equal(value("pouch_containers", { state: "running" }), 2);
  assert.equal(value("pouch_containers", { state: "exited" }), 1);
  assert.equal(value("pouch_containers", { state: "paused" }), 0);
  assert.equal(value("pouch_engine_info", { version: "0.1.0" }), 1);
  assert.equal(
    value("pouch_api_requests_total", { route: "/containers/:id/json", status: "404" }),
    1,
  );
  assert.equal(value("pouch_api_request_duration_seconds_bucket", { le: "0.005" }), 1);
  assert.equal(value("pouch_containerd_requests_total", { service: "Tasks", method: "Get" }), 2);
  assert.equal(value("pouch_containerd_request_errors_total", { service: "Tasks" }), 1);
  assert.equal(value("pouch_image_pull_bytes_total"), 123);
});
