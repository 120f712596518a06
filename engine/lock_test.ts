import assert from "node:assert/strict";
import { isConflict } from "./errors.ts";
import { LOCK_FILE, lockHome } from "./lock.ts";

Deno.test("lockHome() refuses a second holder and names the first one's pid", async () => {
  const home = await Deno.makeTempDir({ prefix: "pouch-lock-" });
  try {
    const lock = await lockHome(home);
    await assert.rejects(lockHome(home), (err: Error) => {
      assert.ok(isConflict(err));
      assert.match(err.message, new RegExp(`another pouch daemon \\(pid ${Deno.pid}\\)`));
      return true;
    });
    lock.release();
    // Released (or its holder dead): the next daemon takes it, stale file or not.
    const again = await lockHome(home);
    again.release();
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("lockHome() ignores a stale lock file whose holder is gone", async () => {
  const home = await Deno.makeTempDir({ prefix: "pouch-lock-" });
  try {
    await Deno.writeTextFile(`${home}/${LOCK_FILE}`, "999999\n");
    const lock = await lockHome(home);
    assert.equal(await Deno.readTextFile(`${home}/${LOCK_FILE}`), `${Deno.pid}\n`);
    lock.release();
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
