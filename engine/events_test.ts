import assert from "node:assert/strict";
import { isInvalidArgument } from "./errors.ts";
import { EventBus, matchesEvent, parseEventTime } from "./events.ts";

function clock(start: number) {
  let now = start;
  return { now: () => now, advance: (ns: number) => (now += ns) };
}

Deno.test("EventBus.emit() makes Docker's event shape", () => {
  const bus = new EventBus({ nowNano: () => 1_700_000_000_123_456_000 });
  const event = bus.emit({
    type: "container",
    action: "die",
    id: "abc",
    attributes: { name: "web", image: "busybox", exitCode: "3" },
  });
  assert.equal(event.Type, "container");
  assert.equal(event.status, "die");
  assert.equal(event.id, "abc");
  assert.equal(event.from, "busybox");
  assert.equal(event.scope, "local");
  assert.equal(event.time, 1_700_000_000);
  assert.equal(event.Actor.Attributes.exitCode, "3");
});

Deno.test("matchesEvent() applies Docker's filters", () => {
  const bus = new EventBus();
  const start = bus.emit({
    type: "container",
    action: "start",
    id: "abcdef",
    attributes: { name: "web", image: "busybox:latest", tier: "front" },
  });
  const exec = bus.emit({ type: "container", action: "exec_start: sh", id: "abcdef" });
  const pull = bus.emit({ type: "image", action: "pull", id: "busybox:latest" });
  assert.ok(matchesEvent(start, { type: ["container"], event: ["start", "die"] }));
  assert.ok(!matchesEvent(start, { event: ["die"] }));
  assert.ok(matchesEvent(exec, { event: ["exec_start"] }));
  assert.ok(matchesEvent(start, { container: ["web"] }));
  assert.ok(matchesEvent(start, { container: ["abc"] }));
  assert.ok(!matchesEvent(start, { container: ["db"] }));
  assert.ok(matchesEvent(start, { image: ["busybox"] }));
  assert.ok(matchesEvent(pull, { image: ["busybox:latest"] }));
  assert.ok(matchesEvent(start, { label: ["tier"] }));
  assert.ok(matchesEvent(start, { label: ["tier=front"] }));
  assert.ok(!matchesEvent(start, { label: ["tier=back"] }));
  assert.ok(!matchesEvent(pull, { type: ["container"] }));
});

Deno.test("EventBus.subscribe() replays since, stops at until, rejects bad filters", async () => {
  const time = clock(1e18);
  const bus = new EventBus({ nowNano: time.now });
  bus.emit({ type: "container", action: "create", id: "a" });
  time.advance(1e9);
  const second = bus.emit({ type: "container", action: "start", id: "a" });
  time.advance(1e9);
  bus.emit({ type: "image", action: "tag", id: "i" });
  time.advance(1e9);
  const seen: string[] = [];
  for await (
    const event of bus.subscribe({ sinceNano: second.timeNano, untilNano: time.now() - 1 })
  ) {
    seen.push(event.Action);
  }
  assert.deepEqual(seen, ["start", "tag"]);
  assert.throws(() => bus.subscribe({ filters: { nonsense: ["x"] } }), isInvalidArgument);
});

Deno.test("EventBus.subscribe() streams live events until aborted", async () => {
  const bus = new EventBus();
  const abort = new AbortController();
  const stream = bus.subscribe({ filters: { type: ["container"] }, signal: abort.signal });
  const first = stream.next();
  bus.emit({ type: "image", action: "pull", id: "x" });
  bus.emit({ type: "container", action: "start", id: "c" });
  assert.equal((await first).value?.Action, "start");
  const second = stream.next();
  abort.abort();
  assert.equal((await second).done, true);
});

Deno.test("parseEventTime() reads seconds with nanoseconds and RFC 3339", () => {
  assert.equal(parseEventTime("1700000000.5"), 1_700_000_000_500_000_000);
  assert.equal(parseEventTime("1700000000"), 1_700_000_000e9);
  assert.equal(parseEventTime("2023-11-14T22:13:20Z"), 1_700_000_000e9);
  assert.throws(() => parseEventTime("yesterday"), isInvalidArgument);
});
