/**
 * The daemon's event bus: every part of the engine reports what happened to its objects
 * (`container start`, `image pull`, ...) through {@link EventBus.emit}; `GET /events` streams
 * them in Docker's shape. A bounded ring of recent events answers `since`.
 *
 * ```ts
 * const events = new EventBus();
 * events.emit({ type: "container", action: "start", id, attributes: { name: "web" } });
 * for await (const event of events.subscribe({ filters: { type: ["container"] } })) { ... }
 * ```
 *
 * @module
 */
import { invalidArgument } from "./errors.ts";
import type { ImageManager } from "./image.ts";

/** The kinds of object events are about (Docker's `events.Type`). */
export type EventType = "container" | "image" | "volume" | "network" | "daemon" | "plugin";

/** What a part of the engine reports. */
export interface EventInput {
  type: EventType;
  /** `create`, `start`, `die`, `pull`, `exec_create: sh`, ... */
  action: string;
  /** The object's ID (a container ID, an image ID or reference). */
  id: string;
  /** `name`, `image`, `exitCode`, `signal`, labels, ... */
  attributes?: Record<string, string>;
}

/** Docker's event message (`events.Message`), with the legacy `status`/`id`/`from` fields. */
export interface EngineEvent {
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: "local";
  /** Unix seconds. */
  time: number;
  /** Unix nanoseconds. */
  timeNano: number;
  status?: string;
  id?: string;
  from?: string;
}

/** Something events can be reported to (what the managers are given). */
export interface EventSink {
  /** Records and publishes one event. */
  emit(input: EventInput): void;
}

/** Options of {@link EventBus}. */
export interface EventBusOptions {
  /** How many recent events are kept for `since`; 1000 by default. */
  capacity?: number;
  /** The clock, in nanoseconds since the epoch (tests pin it). */
  nowNano?: () => number;
}

/** Options of {@link EventBus.subscribe}. */
export interface SubscribeOptions {
  /** Replay kept events from this time (unix nanoseconds) on. */
  sinceNano?: number;
  /** Stop at this time (unix nanoseconds); past events only when it has passed. */
  untilNano?: number;
  /** Docker's event filters (`type`, `event`, `container`, `image`, `label`, ...). */
  filters?: Record<string, string[]>;
  /** Ends the stream (the client went away). */
  signal?: AbortSignal;
}

/** The filter keys Docker's `GET /events` accepts. */
const FILTER_KEYS = new Set([
  "type",
  "event",
  "action",
  "container",
  "image",
  "label",
  "volume",
  "network",
  "daemon",
  "plugin",
  "scope",
  "config",
  "secret",
  "service",
  "node",
]);

interface Subscriber {
  accept(event: EngineEvent): void;
}

/** Publishes events to subscribers and keeps the most recent ones. */
export class EventBus implements EventSink {
  readonly #capacity: number;
  readonly #nowNano: () => number;
  readonly #ring: EngineEvent[] = [];
  readonly #subscribers = new Set<Subscriber>();
  #lastNano = 0;

  /** A bus keeping `options.capacity` recent events. */
  constructor(options: EventBusOptions = {}) {
    this.#capacity = options.capacity ?? 1000;
    this.#nowNano = options.nowNano ?? (() => Date.now() * 1e6);
  }

  /** Records `input` as a Docker event and hands it to every subscriber. */
  emit(input: EventInput): EngineEvent {
    // Strictly increasing times keep `since` replays in order and without duplicates.
    const nano = Math.max(this.#nowNano(), this.#lastNano + 1000);
    this.#lastNano = nano;
    const event = makeEvent(input, nano);
    this.#ring.push(event);
    if (this.#ring.length > this.#capacity) this.#ring.shift();
    for (const subscriber of this.#subscribers) subscriber.accept(event);
    return event;
  }

  /** The kept events in `[sinceNano, untilNano]` that match `filters`, oldest first. */
  recent(options: Omit<SubscribeOptions, "signal"> = {}): EngineEvent[] {
    const filters = options.filters ?? {};
    return this.#ring.filter((event) =>
      (options.sinceNano === undefined || event.timeNano >= options.sinceNano) &&
      (options.untilNano === undefined || event.timeNano <= options.untilNano) &&
      matchesEvent(event, filters)
    );
  }

  /**
   * Kept events since `sinceNano` (when given), then live ones, until `untilNano` passes or
   * `signal` aborts. Filters are validated before anything is yielded.
   */
  subscribe(options: SubscribeOptions = {}): AsyncGenerator<EngineEvent> {
    const filters = validateEventFilters(options.filters ?? {});
    return this.#stream({ ...options, filters });
  }

  async *#stream(options: SubscribeOptions): AsyncGenerator<EngineEvent> {
    const { untilNano, signal } = options;
    const queue: EngineEvent[] = [];
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    // Subscribe before replaying so that nothing emitted in between is lost.
    const subscriber: Subscriber = {
      accept: (event) => {
        if (!matchesEvent(event, options.filters ?? {})) return;
        queue.push(event);
        notify();
      },
    };
    const replay = options.sinceNano === undefined ? [] : this.recent(options);
    const live = untilNano === undefined || untilNano > this.#nowNano();
    if (live) this.#subscribers.add(subscriber);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let expired = !live;
    if (live && untilNano !== undefined) {
      timer = setTimeout(() => {
        expired = true;
        notify();
      }, Math.max(0, (untilNano - this.#nowNano()) / 1e6));
    }
    signal?.addEventListener("abort", notify, { once: true });
    try {
      let last = 0;
      for (const event of replay) {
        last = event.timeNano;
        yield event;
      }
      while (!signal?.aborted) {
        const next = queue.shift();
        if (next) {
          if (next.timeNano <= last) continue;
          if (untilNano !== undefined && next.timeNano > untilNano) break;
          yield next;
          continue;
        }
        if (expired) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", notify);
      this.#subscribers.delete(subscriber);
    }
  }
}

/** Docker's event message for `input` at `nano`. */
function makeEvent(input: EventInput, nano: number): EngineEvent {
  const attributes = { ...(input.attributes ?? {}) };
  const event: EngineEvent = {
    Type: input.type,
    Action: input.action,
    Actor: { ID: input.id, Attributes: attributes },
    scope: "local",
    time: Math.floor(nano / 1e9),
    timeNano: nano,
  };
  // The fields of API versions before 1.22, which Docker still sends for containers and images.
  if (input.type === "container" || input.type === "image") {
    event.status = input.action;
    event.id = input.id;
    if (input.type === "container" && attributes.image) event.from = attributes.image;
  }
  return event;
}

/** Checks the keys of `filters`; 400 for one Docker does not know. */
export function validateEventFilters(
  filters: Record<string, string[]>,
): Record<string, string[]> {
  for (const key of Object.keys(filters)) {
    if (!FILTER_KEYS.has(key)) throw invalidArgument(`invalid filter '${key}'`);
  }
  for (const type of filters.type ?? []) {
    if (!["container", "image", "volume", "network", "daemon", "plugin"].includes(type)) {
      throw invalidArgument(`invalid filter 'type=${type}'`);
    }
  }
  return filters;
}

/**
 * Docker's event filter: values of one key are alternatives, keys must all match.
 * `container` matches an ID prefix or the name, `image` the image (with or without its tag),
 * `label` a key or `key=value` among the attributes, `event` (or `action`) the action before
 * any `:` (`exec_start: sh` is `exec_start`).
 */
export function matchesEvent(event: EngineEvent, filters: Record<string, string[]>): boolean {
  const attributes = event.Actor.Attributes;
  const any = (key: string, test: (value: string) => boolean) => {
    const values = filters[key] ?? [];
    return values.length === 0 || values.some(test);
  };
  const action = event.Action.split(":")[0]!.trim();
  const ofType = (type: EventType, value: string) =>
    event.Type === type && (event.Actor.ID === value || attributes.name === value ||
      (value.length > 0 && event.Actor.ID.startsWith(value)));
  return any("type", (v) => event.Type === v) &&
    any("event", (v) => v === action || v === event.Action) &&
    any("action", (v) => v === action || v === event.Action) &&
    any("scope", (v) => v === event.scope) &&
    any("container", (v) => ofType("container", v)) &&
    any("volume", (v) => ofType("volume", v)) &&
    any("network", (v) => ofType("network", v)) &&
    any("plugin", (v) => ofType("plugin", v)) &&
    any("daemon", (v) => ofType("daemon", v)) &&
    any("image", (v) => matchesImage(event, v)) &&
    any("label", (v) => {
      const eq = v.indexOf("=");
      if (eq < 0) return v in attributes;
      return attributes[v.slice(0, eq)] === v.slice(eq + 1);
    });
}

function matchesImage(event: EngineEvent, value: string): boolean {
  const candidates = event.Type === "image"
    ? [event.Actor.ID, event.Actor.Attributes.name ?? ""]
    : event.Type === "container"
    ? [event.Actor.Attributes.image ?? ""]
    : [];
  return candidates.some((c) => c !== "" && (c === value || stripTag(c) === stripTag(value)));
}

/** `busybox:latest` -> `busybox`; `host:5000/x` keeps its port. */
function stripTag(ref: string): string {
  const at = ref.indexOf("@");
  if (at >= 0) return ref.slice(0, at);
  const colon = ref.lastIndexOf(":");
  return colon > ref.lastIndexOf("/") ? ref.slice(0, colon) : ref;
}

/**
 * Docker's `since`/`until` of `GET /events`: unix seconds with an optional fraction of up to
 * nine digits (`1700000000.123456789`), or an RFC 3339 time; answered in unix nanoseconds.
 */
export function parseEventTime(value: string): number {
  const match = /^(-?\d+)(?:\.(\d{1,9}))?$/.exec(value);
  if (match) {
    return Number(match[1]) * 1e9 + Number((match[2] ?? "").padEnd(9, "0"));
  }
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalidArgument(`invalid time value: ${value}`);
  return ms * 1e6;
}

/** The image manager's operations that the API uses. */
export type ImageOperations = Pick<
  ImageManager,
  "list" | "inspect" | "tag" | "remove" | "load" | "import" | "pull" | "push" | "save" | "login"
>;

/**
 * The image manager's operations, with load, import, pull, push, tag and remove emitting
 * Docker's image events once they succeed. Kept outside the image manager so that it does not
 * need to know who listens.
 */
export function withImageEvents(images: ImageOperations, events: EventSink): ImageOperations {
  const image = (action: string, id: string, name?: string) =>
    events.emit({ type: "image", action, id, attributes: name ? { name } : {} });
  return {
    list: (options) => images.list(options),
    inspect: (name) => images.inspect(name),
    save: (names) => images.save(names),
    login: (auth) => images.login(auth),
    async load(stream, options) {
      const lines = await images.load(stream, options);
      for (const line of lines) {
        const ref = /^Loaded image(?: ID)?: (.+)$/.exec(line)?.[1];
        if (ref) image("load", ref, ref);
      }
      return lines;
    },
    async import(stream, options) {
      const id = await images.import(stream, options);
      image("import", id, options?.ref);
      return id;
    },
    async pull(ref, options) {
      const result = await images.pull(ref, options);
      image("pull", ref, ref);
      return result;
    },
    async push(ref, options) {
      const result = await images.push(ref, options);
      image("push", ref, ref);
      return result;
    },
    async tag(source, target) {
      await images.tag(source, target);
      image("tag", source, target);
    },
    async remove(name, options) {
      const items = await images.remove(name, options);
      for (const item of items) {
        if ("Untagged" in item) image("untag", item.Untagged, item.Untagged);
        else image("delete", item.Deleted);
      }
      return items;
    },
  };
}
