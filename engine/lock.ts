/**
 * One daemon per home: an exclusive `flock` on `<home>/pouchd.lock`, held for the daemon's life.
 * The kernel drops the lock when the process dies, so a stale file (a crashed daemon) never
 * blocks a new start; the file keeps the holder's pid only to name it in the error.
 *
 * @module
 */
import { conflict } from "./errors.ts";

/** The lock file's name inside the home directory. */
export const LOCK_FILE = "pouchd.lock";

/** A held home lock. */
export interface HomeLock {
  /** The lock file's path. */
  path: string;
  /** Releases the lock (the file stays: removing it would race a daemon taking it). */
  release(): void;
}

/**
 * Takes the lock of `home`; throws Conflict naming the holder's pid when another daemon has it.
 */
export async function lockHome(home: string): Promise<HomeLock> {
  const path = `${home}/${LOCK_FILE}`;
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } finally {
    if (!locked) {
      file.close();
    }
  }
  if (!locked) {
    const holder = (await Deno.readTextFile(path).catch(() => "")).trim();
    throw conflict(
      `another pouch daemon${holder ? ` (pid ${holder})` : ""} is using ${home}: ` +
        `${path} is locked`,
    );
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return {
    path,
    release() {
      try {
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}
