/**
 * `GET /events`: the daemon's events as a stream of JSON lines, from `since` (kept events) to
 * `until` or until the client goes away.
 *
 * @module
 */
import { Hono } from "hono";
import { type EventBus, parseEventTime } from "../events.ts";
import { type ApiEnv, filtersQuery, streamResponse } from "./http.ts";

/** What the events route needs of the engine. */
export type EventsBackend = Pick<EventBus, "subscribe">;

const encoder = new TextEncoder();

/** The `/events` route. */
export function eventRoutes(backend: EventsBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/events", (c) => {
    const since = c.req.query("since");
    const until = c.req.query("until");
    const abort = new AbortController();
    const events = backend.subscribe({
      sinceNano: since ? parseEventTime(since) : undefined,
      untilNano: until ? parseEventTime(until) : undefined,
      filters: filtersQuery(c),
      signal: abort.signal,
    });
    async function* lines() {
      for await (const event of events) yield encoder.encode(JSON.stringify(event) + "\n");
    }
    return streamResponse(lines(), { contentType: "application/json", signal: abort });
  });
  return app;
}
