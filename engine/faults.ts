/**
 * Test-only fault injection: named points in multi-step operations where a test can make the
 * daemon fail (throw) or crash (SIGKILL itself), to prove that every step rolls back or
 * recovers. Points are armed by the `POUCH_FAULTS` environment variable of the daemon, a comma
 * list of `POINT` (throw) or `POINT=crash`; unset, every point is a no-op.
 *
 * @module
 */
import { systemError } from "./errors.ts";

let armed: Map<string, "throw" | "crash"> | undefined;

function faults(): Map<string, "throw" | "crash"> {
  if (armed) return armed;
  armed = new Map();
  const spec = Deno.env.get("POUCH_FAULTS") ?? "";
  for (const entry of spec.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const [point = "", action = "throw"] = entry.split("=");
    armed.set(point, action === "crash" ? "crash" : "throw");
  }
  return armed;
}

/**
 * Marks a fault point: throws a system error naming it, or kills the daemon with SIGKILL, when
 * `POUCH_FAULTS` arms it.
 */
export function faultPoint(point: string): void {
  const action = faults().get(point);
  if (action === undefined) return;
  if (action === "crash") Deno.kill(Deno.pid, "SIGKILL");
  throw systemError(`injected fault at ${point}`);
}
