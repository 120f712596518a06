/**
 * The daemon's one logger: leveled lines on stderr (journald adds timestamps under systemd, so
 * lines carry only an RFC 3339 time, the level and the message with its fields).
 *
 * @module
 */

/** Log levels, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";

const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const encoder = new TextEncoder();

/** A logger writing `time level message key=value...` lines. */
export class Logger {
  #level: Level;
  readonly #write: (line: string) => void;

  /** Makes a logger at `level` writing to `write` (stderr by default). */
  constructor(level: Level = "info", write?: (line: string) => void) {
    this.#level = level;
    this.#write = write ?? ((line) => {
      try {
        Deno.stderr.writeSync(encoder.encode(line + "\n"));
      } catch {
        // stderr gone (daemon detached): nothing better to do with a log line.
      }
    });
  }

  /** Changes the level. */
  set level(level: Level) {
    this.#level = level;
  }

  /** The current level. */
  get level(): Level {
    return this.#level;
  }

  /** Whether lines of `level` are written. */
  enabled(level: Level): boolean {
    return order[level] >= order[this.#level];
  }

  /** Writes a debug line. */
  debug(message: string, fields?: Record<string, unknown>): void {
    this.#log("debug", message, fields);
  }

  /** Writes an info line. */
  info(message: string, fields?: Record<string, unknown>): void {
    this.#log("info", message, fields);
  }

  /** Writes a warning line. */
  warn(message: string, fields?: Record<string, unknown>): void {
    this.#log("warn", message, fields);
  }

  /** Writes an error line. */
  error(message: string, fields?: Record<string, unknown>): void {
    this.#log("error", message, fields);
  }

  #log(level: Level, message: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    let line = `${new Date().toISOString()} ${level.toUpperCase()} ${message}`;
    for (const [key, value] of Object.entries(fields ?? {})) {
      if (value === undefined) continue;
      const text = value instanceof Error ? value.message : String(value);
      line += ` ${key}=${/[\s"]/.test(text) ? JSON.stringify(text) : text}`;
    }
    this.#write(line);
  }
}
