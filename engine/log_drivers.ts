/**
 * Log drivers: where a container's output goes, chosen per container by
 * `HostConfig.LogConfig {Type, Config}` (`run --log-driver X --log-opt k=v`) with the daemon's
 * `--log-driver`/`--log-opt` as defaults, as in Docker:
 *
 * - `json-file` (default): `json.log` in the container's directory, rotated by `max-size` into
 *   `json.log.1` ... `json.log.N-1` (`max-file`, default 1: truncated in place). `logs` reads it.
 * - `none`: nothing is stored; `logs` answers Docker's error.
 * - `syslog`: one message a line to `syslog-address` (`unix:///dev/log` by default,
 *   `unixgram://`, `udp://HOST:PORT`, `tcp://HOST:PORT`) in RFC 3164 or RFC 5424 format,
 *   tagged with `tag` (default the short container ID).
 *
 * Every driver is an {@link OutputLog}: the output pump does not know which one it writes to.
 *
 * @module
 */
import type { Socket } from "node:dgram";
import { invalidArgument, unavailable } from "./errors.ts";
import { JsonFileLog } from "./logs.ts";
import type { OutputLog, StreamName } from "./stdio.ts";
import { NotDatagramSocket, UnixDatagramSocket } from "./_unix_dgram.ts";

/** Docker's `HostConfig.LogConfig`. */
export interface LogConfig {
  Type: string;
  Config?: Record<string, string>;
}

/** The drivers pouch has. */
export const LOG_DRIVERS = ["json-file", "none", "syslog"] as const;

const OPTIONS: Record<string, string[]> = {
  "json-file": ["max-size", "max-file", "compress"],
  none: [],
  syslog: ["syslog-address", "syslog-facility", "syslog-format", "tag"],
};

const FACILITIES: Record<string, number> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

const SYSLOG_FORMATS = ["", "rfc3164", "rfc5424", "rfc5424micro"];

/**
 * The log config a container gets: its own, with the daemon's type when it names none and the
 * daemon's options under its own when the types match (Docker's merge). Throws InvalidArgument
 * for an unknown driver or option, or a bad value.
 */
export function resolveLogConfig(requested: LogConfig | undefined, defaults: LogConfig): LogConfig {
  const type = requested?.Type || defaults.Type || "json-file";
  const config: Record<string, string> = { ...(requested?.Config ?? {}) };
  if (type === defaults.Type) {
    for (const [key, value] of Object.entries(defaults.Config ?? {})) config[key] ??= value;
  }
  const resolved = { Type: type, Config: config };
  validateLogConfig(resolved);
  return resolved;
}

/** Checks a log config as Docker does at create; throws InvalidArgument. */
export function validateLogConfig(config: LogConfig): void {
  const known = OPTIONS[config.Type];
  if (!known) throw invalidArgument(`logger: no log driver named '${config.Type}' is registered`);
  const opts = config.Config ?? {};
  for (const key of Object.keys(opts)) {
    if (!known.includes(key)) {
      throw invalidArgument(`unknown log opt '${key}' for ${config.Type} log driver`);
    }
  }
  if (config.Type === "json-file") jsonFileOptions(opts);
  if (config.Type === "syslog") syslogOptions(opts, { id: "0".repeat(64), name: "", image: "" });
}

/** What a log driver knows of the container it logs (for tags). */
export interface LogTarget {
  /** The container's directory: the json-file log is `json.log` there. */
  dir: string;
  id: string;
  name: string;
  /** The image as the user named it. */
  image: string;
}

/**
 * Opens the log a run of a container writes with driver `config`. Throws Unavailable when the
 * driver cannot reach its destination (nothing listens at the syslog address): the start fails,
 * as Docker's does.
 */
export async function openLogDriver(config: LogConfig, target: LogTarget): Promise<OutputLog> {
  const opts = config.Config ?? {};
  switch (config.Type) {
    case "none":
      return new DiscardLog();
    case "syslog":
      return await SyslogLog.open(syslogOptions(opts, target));
    default:
      return new JsonFileLog(logPathOf(config, target.dir), jsonFileOptions(opts));
  }
}

/** Inspect's `LogPath`: the json-file log's path; empty for drivers that keep no file. */
export function logPathOf(config: LogConfig | undefined, dir: string): string {
  return !config || config.Type === "json-file" ? `${dir}/json.log` : "";
}

/** Whether `logs` can read what driver `config` wrote (Docker: only drivers with a reader). */
export function canReadLogs(config: LogConfig | undefined): boolean {
  return !config || config.Type === "json-file";
}

/** Docker's answer to `logs` of a container whose driver keeps nothing readable. */
export const NO_READ_MESSAGE = "configured logging driver does not support reading";

function jsonFileOptions(opts: Record<string, string>): { maxSize: number; maxFiles: number } {
  let maxSize = 0;
  if (opts["max-size"] !== undefined && opts["max-size"] !== "-1") {
    maxSize = sizeInBytes(opts["max-size"]);
    if (maxSize <= 0) throw invalidArgument(`max-size must be a positive number`);
  }
  let maxFiles = 1;
  if (opts["max-file"] !== undefined) {
    maxFiles = Number(opts["max-file"]);
    if (!/^\d+$/.test(opts["max-file"]) || maxFiles < 1) {
      throw invalidArgument(`max-file cannot be less than 1: ${JSON.stringify(opts["max-file"])}`);
    }
    if (maxFiles > 1 && maxSize === 0) {
      throw invalidArgument("max-file can only be set when max-size is set");
    }
  }
  const compress = opts["compress"];
  if (compress !== undefined && !["false", "0", ""].includes(compress)) {
    throw invalidArgument(
      "compress is not supported by pouch's json-file log driver: rotated files stay plain",
    );
  }
  return { maxSize, maxFiles };
}

/** Docker's log sizes (`10m`, `1.5g`, `512k`, plain bytes): binary units. */
function sizeInBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?) ?([kKmMgGtT])?[iI]?[bB]?$/.exec(text.trim());
  if (!match) throw invalidArgument(`invalid max-size ${JSON.stringify(text)}: want e.g. 10m`);
  const unit = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    (match[2] ?? "").toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  return Math.trunc(Number(match[1]) * unit);
}

/** A syslog destination and message format. */
export interface SyslogOptions {
  transport: "unix" | "udp" | "tcp";
  /** Socket path (unix) or `HOST:PORT`. */
  address: string;
  /** `unixgram://` insists on a datagram socket; `unix://` also takes a stream one. */
  datagramOnly: boolean;
  facility: number;
  format: "rfc3164" | "rfc5424" | "rfc5424micro";
  tag: string;
}

function syslogOptions(
  opts: Record<string, string>,
  target: Pick<LogTarget, "id" | "name" | "image">,
): SyslogOptions {
  const address = opts["syslog-address"] || "unix:///dev/log";
  const match = /^(unix|unixgram|udp|tcp):\/\/(.+)$/.exec(address);
  if (!match) {
    throw invalidArgument(
      `invalid syslog-address ${JSON.stringify(address)}: want unix:///PATH, ` +
        `unixgram:///PATH, udp://HOST:PORT or tcp://HOST:PORT`,
    );
  }
  const scheme = match[1]!;
  let where = match[2]!;
  if (scheme === "udp" || scheme === "tcp") {
    if (!/:\d+$/.test(where)) where += ":514";
  } else if (!where.startsWith("/")) {
    throw invalidArgument(`invalid syslog-address ${address}: want an absolute socket path`);
  }
  const facilityName = opts["syslog-facility"] || "daemon";
  const facility = FACILITIES[facilityName];
  if (facility === undefined) throw invalidArgument(`invalid syslog facility ${facilityName}`);
  const format = opts["syslog-format"] ?? "";
  if (!SYSLOG_FORMATS.includes(format)) {
    throw invalidArgument(
      `unknown syslog format ${JSON.stringify(format)}: want rfc3164, rfc5424 or rfc5424micro`,
    );
  }
  return {
    transport: scheme === "udp" ? "udp" : scheme === "tcp" ? "tcp" : "unix",
    address: where,
    datagramOnly: scheme === "unixgram",
    facility,
    format: (format || "rfc3164") as SyslogOptions["format"],
    tag: renderTag(opts["tag"] ?? "{{.ID}}", target),
  };
}

/** Docker's log tag templates (the common fields). */
function renderTag(template: string, target: Pick<LogTarget, "id" | "name" | "image">): string {
  const fields: Record<string, string> = {
    ID: target.id.slice(0, 12),
    FullID: target.id,
    Name: target.name,
    ImageName: target.image,
    DaemonName: "pouch",
  };
  const tag = template.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_whole, field: string) => {
    const value = fields[field];
    if (value === undefined) {
      throw invalidArgument(`invalid log tag ${template}: no field ${field}`);
    }
    return value;
  });
  if (tag.includes("{{")) throw invalidArgument(`invalid log tag template ${template}`);
  return tag;
}

/** The `none` driver: output goes only to attached clients. */
class DiscardLog implements OutputLog {
  write(): void {}
  flush(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Docker's severities of a container's streams. */
const SEVERITY: Record<StreamName, number> = { stdout: 6, stderr: 3 };
const encoder = new TextEncoder();
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Renders one syslog message (without framing) as Docker's syslog driver does. */
export function syslogMessage(
  options: Pick<SyslogOptions, "facility" | "format" | "tag">,
  entry: { stream: StreamName; text: string; time?: Date; hostname?: string; pid?: number },
): string {
  const priority = options.facility * 8 + SEVERITY[entry.stream];
  const time = entry.time ?? new Date();
  const hostname = entry.hostname ?? Deno.hostname();
  const pid = entry.pid ?? Deno.pid;
  if (options.format === "rfc3164") {
    const pad = (n: number) => String(n).padStart(2, "0");
    const stamp = `${MONTHS[time.getMonth()]} ${String(time.getDate()).padStart(2, " ")} ` +
      `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}`;
    return `<${priority}>${stamp} ${hostname} ${options.tag}[${pid}]: ${entry.text}`;
  }
  const iso = time.toISOString();
  // rfc5424micro keeps microseconds; Docker's rfc5424 keeps seconds.
  const stamp = options.format === "rfc5424micro"
    ? iso.replace(/\.(\d{3})Z$/, ".$1000Z")
    : iso.replace(/\.\d{3}Z$/, "Z");
  return `<${priority}>1 ${stamp} ${hostname} ${options.tag} ${pid} ${options.tag} - ${entry.text}`;
}

/** How a syslog message leaves. */
interface SyslogTransport {
  send(message: Uint8Array): Promise<void> | void;
  close(): void;
}

/** The `syslog` driver: one message a line of output. */
class SyslogLog implements OutputLog {
  readonly #options: SyslogOptions;
  readonly #transport: SyslogTransport;
  readonly #partial: Record<StreamName, string> = { stdout: "", stderr: "" };
  readonly #decoders: Record<StreamName, TextDecoder> = {
    stdout: new TextDecoder(),
    stderr: new TextDecoder(),
  };
  #queue: Promise<void> = Promise.resolve();

  private constructor(options: SyslogOptions, transport: SyslogTransport) {
    this.#options = options;
    this.#transport = transport;
  }

  static async open(options: SyslogOptions): Promise<SyslogLog> {
    return new SyslogLog(options, await connectSyslog(options));
  }

  write(stream: StreamName, chunk: Uint8Array): void {
    const text = this.#partial[stream] + this.#decoders[stream].decode(chunk, { stream: true });
    const lines = text.split("\n");
    this.#partial[stream] = lines.pop() ?? "";
    for (const line of lines) this.#send(stream, line);
    // A line longer than Docker's 16 KiB buffer goes as it is, like Docker's partial messages.
    if (this.#partial[stream].length >= 16 * 1024) {
      this.#send(stream, this.#partial[stream]);
      this.#partial[stream] = "";
    }
  }

  async flush(): Promise<void> {
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.#partial[stream]) this.#send(stream, this.#partial[stream]);
      this.#partial[stream] = "";
    }
    await this.#queue;
  }

  async close(): Promise<void> {
    await this.flush();
    this.#transport.close();
  }

  #send(stream: StreamName, text: string): void {
    // Docker sends no empty messages.
    if (text === "") return;
    const message = syslogMessage(this.#options, { stream, text });
    // Stream transports need a frame; newline-terminated as syslog daemons take it.
    const bytes = encoder.encode(this.#options.transport === "tcp" ? message + "\n" : message);
    this.#queue = this.#queue.then(() => this.#transport.send(bytes)).catch(() => {
      // A syslog daemon that went away must not stop the output pump; the message is lost.
    });
  }
}

/** Connects to the syslog destination; throws Unavailable when it cannot be reached. */
async function connectSyslog(options: SyslogOptions): Promise<SyslogTransport> {
  const [host, port] = splitHostPort(options.address);
  try {
    if (options.transport === "udp") {
      // Loaded only here: node:dgram brings Deno's Node compatibility layer (~10 MB of RSS).
      const { createSocket } = await import("node:dgram");
      const socket: Socket = createSocket(host.includes(":") ? "udp6" : "udp4");
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.connect(port, host, () => {
          socket.off("error", reject);
          resolve();
        });
      });
      // ICMP errors of a connected UDP socket arrive as events: ignore them (lossy by nature).
      socket.on("error", () => {});
      return {
        send: (message) => new Promise<void>((resolve) => socket.send(message, () => resolve())),
        close: () => socket.close(),
      };
    }
    if (options.transport === "tcp") {
      return streamTransport(await Deno.connect({ hostname: host, port }));
    }
    try {
      const socket = UnixDatagramSocket.connect(options.address);
      return { send: (message) => void socket.send(message), close: () => socket.close() };
    } catch (err) {
      if (!(err instanceof NotDatagramSocket) || options.datagramOnly) throw err;
      // Some syslog daemons listen on a stream socket: newline-terminated messages then.
      const conn = await Deno.connect({ transport: "unix", path: options.address });
      const transport = streamTransport(conn);
      return {
        send: (m) => transport.send(concat(m, encoder.encode("\n"))),
        close: transport.close,
      };
    }
  } catch (err) {
    throw unavailable(
      `failed to initialize logging driver: syslog at ${options.address}: ${
        err instanceof Error ? err.message : String(err)
      }`,
      err,
    );
  }
}

function streamTransport(conn: Deno.Conn): SyslogTransport {
  return {
    async send(message) {
      let offset = 0;
      while (offset < message.length) offset += await conn.write(message.subarray(offset));
    },
    close: () => {
      try {
        conn.close();
      } catch {
        // Already closed by the peer.
      }
    },
  };
}

function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(":");
  if (colon < 0) return [address, 514];
  return [address.slice(0, colon).replace(/^\[|\]$/g, ""), Number(address.slice(colon + 1))];
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
