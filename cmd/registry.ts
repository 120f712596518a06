/**
 * What the CLI needs for registries: the credentials file (Docker's `config.json` format),
 * the `X-Registry-Auth` header made from it, and the display of Docker's JSON progress
 * messages (live bars per layer in a terminal, plain lines otherwise), plus the pull that
 * `pull` and `run` share.
 *
 * @module
 */

import { ApiError, jsonMessages } from "./client.ts";
import { type CommandContext, err, out } from "./command.ts";
import type { Writer } from "./stream.ts";
import { writeAll } from "./stream.ts";

/** The key Docker Hub's credentials are stored under, as Docker does. */
export const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/** An entry of `auths`. */
export interface StoredAuth {
  /** base64 of `username:password`. */
  auth?: string;
  identitytoken?: string;
}

/** The parts of Docker's `config.json` pouch reads and writes (others are kept as they are). */
export interface DockerConfigFile {
  auths?: Record<string, StoredAuth>;
  [key: string]: unknown;
}

/**
 * The credentials file: `$POUCH_CONFIG` (a file), else `$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`.
 */
export function configPath(env: (key: string) => string | undefined): string {
  const pouch = env("POUCH_CONFIG");
  if (pouch) return pouch;
  const docker = env("DOCKER_CONFIG");
  if (docker) return `${docker.replace(/\/+$/, "")}/config.json`;
  return `${env("HOME") ?? "/root"}/.docker/config.json`;
}

/** Reads the credentials file; a missing one is empty. */
export async function readConfigFile(path: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  if (text.trim() === "") return {};
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path} does not hold a JSON object`);
  }
  return parsed as DockerConfigFile;
}

/** Writes the credentials file with mode 0600, through a temp file and a rename. */
export async function writeConfigFile(path: string, config: DockerConfigFile): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(config, null, "\t") + "\n", { mode: 0o600 });
  await Deno.rename(tmp, path);
}

/**
 * The registry host a reference names, as Docker splits it: the first component when it has
 * a `.` or `:` or is `localhost`; Docker Hub otherwise.
 */
export function registryOf(reference: string): string {
  const slash = reference.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = reference.slice(0, slash);
  if (first.includes(".") || first.includes(":") || first === "localhost") {
    return first === "index.docker.io" ? "docker.io" : first;
  }
  return "docker.io";
}

/** The key of a registry in `auths`: Docker Hub's URL, else the host as given. */
export function authKey(server: string): string {
  const host = server.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  if (["docker.io", "index.docker.io", "registry-1.docker.io"].includes(host)) {
    return DOCKER_HUB_KEY;
  }
  return host;
}

/** The stored credentials of `server`, under its key or its `http(s)://` forms. */
export function findAuth(config: DockerConfigFile, server: string): StoredAuth | undefined {
  const key = authKey(server);
  const auths = config.auths ?? {};
  return auths[key] ?? auths[`https://${key}`] ?? auths[`http://${key}`];
}

/** base64url JSON of credentials, the `X-Registry-Auth` header. */
export function encodeAuthHeader(value: Record<string, string>): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_");
}

/** The `X-Registry-Auth` header for a pull or push of `reference`, if credentials are stored. */
export async function authHeaderFor(
  ctx: CommandContext,
  reference: string,
): Promise<Record<string, string>> {
  const registry = registryOf(reference);
  const stored = findAuth(await readConfigFile(configPath(ctx.env)), registry);
  if (!stored?.auth && !stored?.identitytoken) return {};
  const value: Record<string, string> = { serveraddress: authKey(registry) };
  if (stored.auth) {
    const decoded = atob(stored.auth);
    const colon = decoded.indexOf(":");
    value.username = decoded.slice(0, colon);
    value.password = decoded.slice(colon + 1);
  }
  if (stored.identitytoken) value.identitytoken = stored.identitytoken;
  return { "X-Registry-Auth": encodeAuthHeader(value) };
}

// ---------------------------------------------------------------------------------------------
// Progress display

/** A message of Docker's JSON progress stream. */
interface JsonMessage {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
  aux?: unknown;
}

/** The line Docker shows for a message: `id: status progress`. */
export function messageLine(msg: JsonMessage): string {
  const prefix = msg.id ? `${msg.id}: ` : "";
  return `${prefix}${msg.status ?? ""}${msg.progress ? " " + msg.progress : ""}`;
}

/** What the live display knows of one layer. */
interface LayerLine {
  /** Row in the block, from the top. */
  row: number;
  /** Whether this is a layer (not the `latest: Pulling from ...` line). */
  layer: boolean;
  done: boolean;
  current: number;
  total: number;
  /** When its first byte count arrived (ms) and what it said, for its speed. */
  started?: number;
  startBytes: number;
}

/** Statuses that end a layer's work. */
const DONE =
  /^(Pull complete|Already exists|Pushed|Layer already exists|Mounted from|Load complete)/;

/** `1.5MB`, `820kB`: decimal units, as Docker's bars count. */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0
    ? `${value}B`
    : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)}${units[unit]}`;
}

/** Options of {@link ProgressDisplay}. */
export interface ProgressDisplayOptions {
  /** The live form (a terminal) or plain lines. */
  tty: boolean;
  /** The clock for speeds, in ms; `performance.now` by default. */
  now?: () => number;
}

/**
 * Renders progress messages. In a terminal each layer keeps one line that is redrawn in place
 * (cursor up, clear line): its state, Docker's bar with the bytes done and due, and its speed;
 * below them a summary line (layers complete, bytes, overall speed, elapsed time) that stays
 * when the block ends. Elsewhere each status is a plain line and the byte counts of
 * `Downloading`/`Pushing` are left out, as Docker's CLI does.
 */
export class ProgressDisplay {
  #writer: Writer;
  #tty: boolean;
  #now: () => number;
  #lines = new Map<string, LayerLine>();
  /** When the current block's first line was drawn. */
  #started = 0;

  /** A display writing to `writer`. */
  constructor(writer: Writer, options: ProgressDisplayOptions) {
    this.#writer = writer;
    this.#tty = options.tty;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Shows one message. */
  async show(msg: JsonMessage): Promise<void> {
    if (msg.stream !== undefined) {
      await writeAll(this.#writer, msg.stream);
      return;
    }
    if (msg.status === undefined) return;
    if (!this.#tty) {
      if (msg.progressDetail?.current !== undefined) return;
      await writeAll(this.#writer, messageLine(msg) + "\n");
      return;
    }
    if (!msg.id) {
      // A line without an id ends the block; its summary line stays above it.
      this.#lines.clear();
      await writeAll(this.#writer, messageLine(msg) + "\n");
      return;
    }
    const now = this.#now();
    let line = this.#lines.get(msg.id);
    const isNew = line === undefined;
    if (line === undefined) {
      if (this.#lines.size === 0) this.#started = now;
      line = {
        row: this.#lines.size,
        layer: !msg.status.startsWith("Pulling from"),
        done: false,
        current: 0,
        total: 0,
        startBytes: 0,
      };
      this.#lines.set(msg.id, line);
    }
    const detail = msg.progressDetail;
    if (detail?.current !== undefined) {
      if (line.started === undefined) {
        line.started = now;
        line.startBytes = detail.current;
      }
      line.current = detail.current;
      if (detail.total) line.total = detail.total;
    }
    line.done = DONE.test(msg.status);
    let text = messageLine(msg);
    if (detail?.current !== undefined && line.started !== undefined && now > line.started) {
      const rate = (line.current - line.startBytes) / ((now - line.started) / 1000);
      text += `  ${humanSize(Math.round(rate))}/s`;
    }
    const summary = this.#summary(now);
    const count = this.#lines.size;
    // The cursor sits below the summary line, which is the block's last row.
    let seq: string;
    if (isNew) {
      const up = count > 1 ? "\x1b[1A" : "";
      seq = `${up}\x1b[2K\r${text}\n\x1b[2K\r${summary}\n`;
    } else {
      const up = count + 1 - line.row;
      seq = `\x1b[${up}A\x1b[2K\r${text}\x1b[${up}B\r\x1b[1A\x1b[2K\r${summary}\n`;
    }
    await writeAll(this.#writer, seq);
  }

  /** `2/4 layers complete, 12.3MB/45.6MB, 25.1MB/s, 1.5s`. */
  #summary(now: number): string {
    const layers = [...this.#lines.values()].filter((l) => l.layer);
    const done = layers.filter((l) => l.done).length;
    const current = layers.reduce((sum, l) => sum + l.current, 0);
    const total = layers.reduce((sum, l) => sum + l.total, 0);
    const seconds = (now - this.#started) / 1000;
    const parts = [`${done}/${layers.length} layers complete`];
    if (total > 0) parts.push(`${humanSize(current)}/${humanSize(total)}`);
    if (current > 0 && seconds > 0) parts.push(`${humanSize(Math.round(current / seconds))}/s`);
    parts.push(`${seconds.toFixed(1)}s`);
    return parts.join(", ");
  }
}

/** Whether the CLI's standard output is a terminal (never in tests, which capture it). */
export function stdoutIsTerminal(ctx: CommandContext): boolean {
  return ctx.consoleSize !== undefined && Deno.stdout.isTerminal();
}

/**
 * Shows a JSON message stream; resolves to the error message it ended with, if any. `aux`
 * messages (a push's digest) are handed to `onAux`.
 */
export async function showMessages(
  body: ReadableStream<Uint8Array>,
  display: ProgressDisplay,
  onAux?: (aux: unknown) => void,
): Promise<string | undefined> {
  for await (const raw of jsonMessages(body)) {
    const msg = raw as JsonMessage;
    if (msg.error || msg.errorDetail?.message) return msg.errorDetail?.message ?? msg.error;
    if (msg.aux !== undefined) {
      onAux?.(msg.aux);
      continue;
    }
    await display.show(msg);
  }
  return undefined;
}

/** Options of {@link pullImage}. */
export interface PullImageOptions {
  /** Where progress goes: stdout for `pull`, stderr for `run`'s implicit pull. */
  toStderr?: boolean;
  /** `--platform`. */
  platform?: string;
  /** `-q`: no progress, only the name at the end. */
  quiet?: boolean;
}

/**
 * Pulls `reference` through the daemon (`POST /images/create?fromImage=`) with the stored
 * credentials, showing the progress. Throws an {@link ApiError} when the pull fails.
 */
export async function pullImage(
  ctx: CommandContext,
  reference: string,
  options: PullImageOptions = {},
): Promise<void> {
  const { repo, tag } = splitRepoTag(reference);
  const res = await ctx.client.request("POST", "/images/create", {
    query: { fromImage: repo, tag, platform: options.platform },
    headers: await authHeaderFor(ctx, reference),
  });
  const writer = options.toStderr ? ctx.stderr : ctx.stdout;
  const display = new ProgressDisplay(
    options.quiet ? { write: (p) => Promise.resolve(p.length) } : writer,
    { tty: !options.quiet && stdoutIsTerminal(ctx) },
  );
  const failure = await showMessages(res.body, display);
  if (failure !== undefined) throw new ApiError(failure, 500);
  if (options.quiet) await out(ctx, `${withTag(reference)}\n`);
}

/** Splits `name[:tag][@digest]` into the `fromImage` and `tag` query values Docker sends. */
export function splitRepoTag(reference: string): { repo: string; tag?: string } {
  const at = reference.indexOf("@");
  if (at >= 0) return { repo: reference.slice(0, at), tag: reference.slice(at + 1) };
  const colon = reference.lastIndexOf(":");
  if (colon > reference.lastIndexOf("/")) {
    return { repo: reference.slice(0, colon), tag: reference.slice(colon + 1) };
  }
  return { repo: reference, tag: "latest" };
}

function withTag(reference: string): string {
  const { repo, tag } = splitRepoTag(reference);
  return tag?.includes(":") ? `${repo}@${tag}` : `${repo}:${tag}`;
}

/** Prints an error line on stderr. */
export function printFailure(ctx: CommandContext, message: string): Promise<void> {
  return err(ctx, `${message}\n`);
}
