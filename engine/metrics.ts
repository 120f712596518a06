/**
 * The daemon's metrics in Prometheus' text exposition format (version 0.0.4), served at
 * `GET /metrics`: a small registry of counters, gauges and histograms with labels, and the
 * daemon's own set ({@link DaemonMetrics}) that the API, the containerd client and the pull path
 * feed through plain callbacks.
 *
 * @module
 */

/** Label values by label name. */
export type Labels = Record<string, string>;

/** The content type of {@link MetricsRegistry.render}'s text. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Seconds: from 5 ms (a ping) to 10 s (a pull, a stop with a timeout). */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Kind = "counter" | "gauge" | "histogram";

interface Family {
  name: string;
  help: string;
  kind: Kind;
  render(): string[];
}

/** `{a="1",b="2"}` with Prometheus' escaping; empty for no labels. */
function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra) pairs.push(extra);
  if (pairs.length === 0) return "";
  const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
  return `{${pairs.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`;
}

function numberText(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** A value per label set, keyed by the label set's text. */
class Series<T> {
  readonly #entries = new Map<string, { labels: Labels; value: T }>();

  get(labels: Labels, make: () => T): T {
    const key = labelText(labels);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, value: make() };
      this.#entries.set(key, entry);
    }
    return entry.value;
  }

  entries(): Array<{ labels: Labels; value: T }> {
    return [...this.#entries.values()];
  }
}

/** A monotonically increasing count. */
export class Counter implements Family {
  readonly kind = "counter";
  readonly #series = new Series<{ n: number }>();

  /** A counter `name` described by `help`. */
  constructor(readonly name: string, readonly help: string) {}

  /** Adds `by` (1 by default) to the series of `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    this.#series.get(labels, () => ({ n: 0 })).n += by;
  }

  /** The current value of the series of `labels`. */
  value(labels: Labels = {}): number {
    return this.#series.get(labels, () => ({ n: 0 })).n;
  }

  /** The exposition lines of every series. */
  render(): string[] {
    return this.#series.entries().map(({ labels, value }) =>
      `${this.name}${labelText(labels)} ${numberText(value.n)}`
    );
  }
}

/** A value read when scraped: `collect` returns each label set's current value. */
export class Gauge implements Family {
  readonly kind = "gauge";

  /** A gauge `name` described by `help`, its values from `collect`. */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly collect: () => Array<{ labels: Labels; value: number }>,
  ) {}

  /** The exposition lines of every series. */
  render(): string[] {
    return this.collect().map(({ labels, value }) =>
      `${this.name}${labelText(labels)} ${numberText(value)}`
    );
  }
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram implements Family {
  readonly kind = "histogram";
  readonly #series = new Series<{ buckets: number[]; sum: number; count: number }>();

  /** A histogram `name` described by `help` with upper bounds `buckets` (ascending). */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[] = LATENCY_BUCKETS,
  ) {}

  /** Records `value` in the series of `labels`. */
  observe(labels: Labels, value: number): void {
    const series = this.#series.get(
      labels,
      () => ({ buckets: this.buckets.map(() => 0), sum: 0, count: 0 }),
    );
    this.buckets.forEach((bound, i) => {
      if (value <= bound) series.buckets[i]!++;
    });
    series.sum += value;
    series.count++;
  }

  /** The exposition lines of every series: buckets (cumulative), `+Inf`, sum and count. */
  render(): string[] {
    const lines: string[] = [];
    for (const { labels, value } of this.#series.entries()) {
      this.buckets.forEach((bound, i) => {
        const le: [string, string] = ["le", numberText(bound)];
        lines.push(`${this.name}_bucket${labelText(labels, le)} ${value.buckets[i]}`);
      });
      lines.push(`${this.name}_bucket${labelText(labels, ["le", "+Inf"])} ${value.count}`);
      lines.push(`${this.name}_sum${labelText(labels)} ${value.sum}`);
      lines.push(`${this.name}_count${labelText(labels)} ${value.count}`);
    }
    return lines;
  }
}

/** A set of metric families rendered together. */
export class MetricsRegistry {
  readonly #families: Family[] = [];

  /** Adds `family`; its name must be new. */
  register<F extends Family>(family: F): F {
    if (this.#families.some((f) => f.name === family.name)) {
      throw new Error(`metric ${family.name} is registered twice`);
    }
    this.#families.push(family);
    return family;
  }

  /** Every family in the text format, with its HELP and TYPE lines. */
  render(): string {
    let text = "";
    for (const family of this.#families) {
      text += `# HELP ${family.name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`;
      text += `# TYPE ${family.name} ${family.kind}\n`;
      for (const line of family.render()) text += line + "\n";
    }
    return text;
  }
}

/** What {@link DaemonMetrics} reads when scraped. */
export interface DaemonMetricsSources {
  /** Container states (`running`, `exited`, ...) of every container. */
  containerStates(): string[];
  /** The `pouch_engine_info` labels: version, commit, runtime, storage driver. */
  info: Labels;
}

/** The daemon's metrics, fed by the API, the containerd client and the pull path. */
export class DaemonMetrics {
  /** The registry to render at `GET /metrics`. */
  readonly registry: MetricsRegistry = new MetricsRegistry();
  readonly #apiRequests: Counter;
  readonly #apiLatency: Histogram;
  readonly #containerdCalls: Counter;
  readonly #containerdErrors: Counter;
  readonly #pullBytes: Counter;

  /** Metrics over the daemon's parts. */
  constructor(sources: DaemonMetricsSources) {
    const r = this.registry;
    r.register(
      new Gauge("pouch_engine_info", "The daemon's version and setup.", () => [
        { labels: sources.info, value: 1 },
      ]),
    );
    r.register(
      new Gauge("pouch_containers", "Containers by state.", () => {
        const counts: Record<string, number> = {
          created: 0,
          running: 0,
          paused: 0,
          restarting: 0,
          exited: 0,
          dead: 0,
        };
        for (const state of sources.containerStates()) counts[state] = (counts[state] ?? 0) + 1;
        return Object.entries(counts).map(([state, value]) => ({ labels: { state }, value }));
      }),
    );
    this.#apiRequests = r.register(
      new Counter("pouch_api_requests_total", "API requests by method, route and status."),
    );
    this.#apiLatency = r.register(
      new Histogram(
        "pouch_api_request_duration_seconds",
        "API request latency by method and route, until the response head.",
      ),
    );
    this.#containerdCalls = r.register(
      new Counter("pouch_containerd_requests_total", "containerd round trips by service, method."),
    );
    this.#containerdErrors = r.register(
      new Counter(
        "pouch_containerd_request_errors_total",
        "containerd round trips that failed, by service and method.",
      ),
    );
    this.#pullBytes = r.register(
      new Counter("pouch_image_pull_bytes_total", "Bytes of layers downloaded by pulls."),
    );
  }

  /** Records one API request (`route` is the route template, such as `/containers/:id/json`). */
  apiRequest(request: { method: string; route: string; status: number }, seconds: number): void {
    const { method, route } = request;
    this.#apiRequests.inc({ method, route, status: String(request.status) });
    this.#apiLatency.observe({ method, route }, seconds);
  }

  /** Records one containerd call (`service` is the short name, such as `Tasks`). */
  containerdCall(call: { service: string; method: string }, failed: boolean): void {
    const labels = { service: call.service, method: call.method };
    this.#containerdCalls.inc(labels);
    if (failed) this.#containerdErrors.inc(labels);
  }

  /** Adds `bytes` downloaded by a pull. */
  pulled(bytes: number): void {
    this.#pullBytes.inc({}, bytes);
  }

  /** The text for `GET /metrics`. */
  render(): string {
    return this.registry.render();
  }
}

/** One parsed sample of the text format. */
export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/**
 * Parses the text format's samples (comments skipped): what a scraper sees, for tests and for
 * `pouch` tools reading `/metrics`.
 */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`invalid metrics line: ${line}`);
    const labels: Labels = {};
    const pairs = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const pair of (match[2] ?? "").matchAll(pairs)) {
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const raw = match[3]!;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== "NaN") throw new Error(`invalid metrics value: ${line}`);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}
