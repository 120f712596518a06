/**
 * API fuzzing against a live daemon: thousands of generated malformed requests (bad JSON, wrong
 * types, huge values, deep nesting, path tricks in names, references and `archive?path=`,
 * broken and hostile tar archives for load, import and `PUT archive`, malformed HTTP), sent
 * only to the daemon's unix socket. The daemon must stay up, answer every request in time and
 * never with a 5xx, and leave its state (containers, images, volumes, networks) and the host
 * outside its containers untouched.
 *
 * The generator is a seeded PRNG: `POUCH_FUZZ_SEED=N` replays a run, `POUCH_FUZZ_COUNT=N` sets
 * its size, `POUCH_FUZZ_DUMP=FILE` writes every request's outcome. A failure names each request
 * by its index, method and path.
 */
import assert from "node:assert/strict";
import { type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";
import { type TarInput, tarStream } from "./tar.ts";

const SEED = Number(Deno.env.get("POUCH_FUZZ_SEED") ?? 20261123);
const COUNT = Number(Deno.env.get("POUCH_FUZZ_COUNT") ?? 10_000);
/** No request may take longer; the daemon answers a bad one in milliseconds. */
const TIMEOUT_MS = 10_000;
const WORKERS = 8;

// ---------------------------------------------------------------------------------------------
// A seeded PRNG (mulberry32) and helpers.

class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
  string(
    length: number,
    alphabet = "abcXYZ019-_./\\:@%$#&?=+ \t\n\"'`{}[]()*~!^|<>,;é☃\u0000",
  ): string {
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }
}

const encoder = new TextEncoder();

/** Names no object has: every lookup with them is a 404 or a 400, never an action. */
function missingRef(rng: Random): string {
  return rng.pick([
    () => `fuzz-missing-${rng.int(1e9)}`,
    () => "../../../../etc/passwd",
    () => "..",
    () => ".",
    () => "%2e%2e%2f%2e%2e%2fetc",
    () => "a%2Fb%2F..%2F..",
    () => "%00",
    () => "x".repeat(5000 + rng.int(5000)),
    () => encodeURIComponent(rng.string(1 + rng.int(40))) + "-fuzz-missing",
    () => "UPPER-case-fuzz-missing",
    () => "sha256:" + "g".repeat(64),
    () => "zz" + "0".repeat(62),
    () => "☃-fuzz-missing",
    () => "fuzz-missing:tag@sha256:abc",
  ])();
}

/** Query values that parse badly or strangely. */
function badValue(rng: Random): string {
  return encodeURIComponent(
    rng.pick([
      () => "",
      () => "-1",
      () => "99999999999999999999999",
      () => "1e309",
      () => "NaN",
      () => "0x10",
      () => "true",
      () => "{",
      () => "[]",
      () => '{"a":',
      () => "null",
      () => rng.string(1 + rng.int(30)),
      () => "9".repeat(400),
      () => "../../../../../../etc/shadow",
    ])(),
  );
}

/** Filters that are never valid JSON objects of lists (so prunes never run). */
function badFilters(rng: Random): string {
  return encodeURIComponent(rng.pick([
    "{",
    "[]",
    "1",
    '"x"',
    '{"name":5}',
    '{"label":"x"}',
    "{".repeat(3000),
    '{"a":[' + "[".repeat(2000),
    "null",
    "\u0000",
  ]));
}

// ---------------------------------------------------------------------------------------------
// Bodies.

/** A value of a JSON type other than `like`'s (null is valid Go, so never null). */
function wrongType(rng: Random, like: unknown): unknown {
  const candidates: Array<() => unknown> = [
    () => rng.string(rng.int(20)),
    () => rng.int(2) === 0,
    () => rng.pick([1.5, -0.5, 1e300, -1e300, 2 ** 64, 3.14159]),
    () => rng.int(1000),
    () => [rng.int(9), { a: 1 }],
    () => ({ nested: { deeper: [1, 2, 3] } }),
  ];
  for (;;) {
    const value = rng.pick(candidates)();
    const kind = (v: unknown) =>
      Array.isArray(v)
        ? "array"
        : v === null
        ? "null"
        : typeof v === "number"
        ? (Number.isSafeInteger(v) ? "int" : "float")
        : typeof v;
    // StrSlice fields take a string as well as a list of strings.
    if (Array.isArray(like) && typeof value === "string") continue;
    if (kind(value) !== kind(like) || (kind(like) === "array" && kind(value) === "array")) {
      if (kind(value) === "array" && kind(like) === "array") {
        // A list of strings gets a list holding a non-string.
        return [rng.string(3), rng.int(5)];
      }
      return value;
    }
  }
}

/** A container create body where Docker's JSON decoder would refuse at least one field. */
function createBody(rng: Random): unknown {
  const template: Record<string, unknown> = {
    Image: "busybox",
    Cmd: ["true"],
    Env: ["A=1"],
    Tty: false,
    Labels: { a: "b" },
    WorkingDir: "/",
    StopTimeout: 10,
    HostConfig: {
      Memory: 0,
      CpuShares: 0,
      Privileged: false,
      Binds: ["/tmp:/tmp"],
      CapAdd: ["NET_ADMIN"],
      Sysctls: { "net.ipv4.ip_forward": "1" },
      RestartPolicy: { Name: "no", MaximumRetryCount: 0 },
      Ulimits: [{ Name: "nofile", Soft: 1, Hard: 2 }],
      PortBindings: { "80/tcp": [{ HostPort: "8080" }] },
      LogConfig: { Type: "json-file", Config: { "max-size": "1m" } },
      Mounts: [{ Type: "tmpfs", Target: "/x", TmpfsOptions: { SizeBytes: 1 } }],
      SecurityOpt: ["no-new-privileges"],
      ShmSize: 0,
    },
    NetworkingConfig: { EndpointsConfig: { bridge: { Aliases: ["a"] } } },
  };
  const paths: string[][] = [];
  const walk = (value: unknown, path: string[]) => {
    if (path.length > 0) paths.push(path);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) walk(child, [...path, key]);
    } else if (Array.isArray(value) && value[0] && typeof value[0] === "object") {
      walk(value[0], [...path, "0"]);
    }
  };
  walk(template, []);
  const path = rng.pick(paths);
  let parent = template as Record<string, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
  const last = path.at(-1)!;
  parent[last] = wrongType(rng, parent[last]);
  return template;
}

/** A JSON body that is broken as JSON or as the object the route needs. */
function brokenJson(rng: Random): string | Uint8Array {
  return rng.pick<() => string | Uint8Array>([
    () => "",
    () => "{",
    () => '{"Image": "busybox",',
    () => "[]",
    () => "null",
    () => '"string"',
    () => "12345",
    () => "[".repeat(100_000) + "]".repeat(100_000),
    () => '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000),
    () => `{"Image":"${"x".repeat(2_000_000)}","Name":5}`,
    () => "{\u0000}",
    () => rng.bytes(1 + rng.int(4096)),
    () => '{"Image":"busybox","Cmd":["true"]}' + "garbage",
    () => '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"Name":5,"Image":5}',
    () => JSON.stringify({ Name: rng.string(300) }),
  ])();
}

// ---------------------------------------------------------------------------------------------
// Archives.

async function tarBytes(entries: TarInput[]): Promise<Uint8Array> {
  return new Uint8Array(await new Response(tarStream(entries)).arrayBuffer());
}

/** A raw ustar header block with any name (no checks), for what TarWriter would refuse. */
function rawHeader(name: string, options: { type?: string; size?: number; link?: string }) {
  const block = new Uint8Array(512);
  const put = (offset: number, length: number, text: string) =>
    block.set(encoder.encode(text).slice(0, length), offset);
  put(0, 100, name);
  put(100, 8, "0000644\0");
  put(108, 8, "0000000\0");
  put(116, 8, "0000000\0");
  put(124, 12, (options.size ?? 0).toString(8).padStart(11, "0") + "\0");
  put(136, 12, "00000000000\0");
  put(156, 1, options.type ?? "0");
  put(157, 100, options.link ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return block;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Tar archives that must be refused: escapes, broken structure, lies about sizes. */
async function hostileTar(
  rng: Random,
  outside: string,
  exclude: number[] = [],
): Promise<Uint8Array> {
  const escape = `${"../".repeat(12)}${outside.slice(1)}/pwned-${rng.int(1e6)}`;
  const end = new Uint8Array(1024);
  const body = encoder.encode("pwned\n");
  const padded = concat(body, new Uint8Array(512 - body.length));
  let kind = rng.int(12);
  while (exclude.includes(kind)) kind = rng.int(12);
  switch (kind) {
    case 0: // a file climbing out
      return concat(rawHeader(escape, { size: body.length }), padded, end);
    case 1: // an absolute name into the host's directory
      return concat(rawHeader(`${outside}/abs-${rng.int(1e6)}`, { size: 6 }), padded, end);
    case 2: // a symlink out, then a file through it (an image may hold that: not for import)
      return concat(
        rawHeader("link", { type: "2", link: outside }),
        rawHeader(`link/through-${rng.int(1e6)}`, { size: body.length }),
        padded,
        end,
      );
    case 3: // a hard link to a host file
      return concat(rawHeader("hard", { type: "1", link: "../../../../../../../etc/passwd" }), end);
    case 4: // truncated in a header
      return rawHeader("a", { size: 6 }).slice(0, 1 + rng.int(511));
    case 5: // a size larger than the data
      return concat(rawHeader("big", { size: 8 * 1024 ** 3 }), padded);
    case 6: // a broken checksum
    {
      const header = rawHeader("x", { size: 6 });
      header[148] = 0x37;
      header[149] = 0x37;
      return concat(header, padded, end);
    }
    case 7: // random bytes
      return rng.bytes(1 + rng.int(8192));
    case 8: // a gzip header, then garbage
      return concat(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), rng.bytes(rng.int(2000)));
    case 9: // a PAX path climbing out
    {
      const record = ` path=${escape}\n`;
      const length = String(record.length + String(record.length).length);
      const pax = encoder.encode(
        `${Number(length) + (String(Number(length)).length - length.length)}${record}`,
      );
      return concat(
        rawHeader("pax", { type: "x", size: pax.length }),
        pax,
        new Uint8Array(512 - (pax.length % 512)),
        rawHeader("innocent", { size: body.length }),
        padded,
        end,
      );
    }
    case 10: // a directory escaping, then a file in it
      return concat(
        rawHeader(`${"../".repeat(8)}tmp/`, { type: "5" }),
        rawHeader(`${"../".repeat(8)}tmp/pouch-fuzz-pwned-${rng.int(1e6)}`, { size: 6 }),
        padded,
        end,
      );
    default: // a bit-flipped valid archive with a climbing name
    {
      const bytes = await tarBytes([{ header: { name: "ok.txt" }, body: "ok" }]);
      const at = rng.int(512);
      bytes[at] = (bytes[at] ?? 0) ^ (1 << rng.int(8));
      return concat(rawHeader(escape, { size: 6 }), padded, bytes);
    }
  }
}

/** docker-save archives that must be refused: bad manifests, escaping blob paths, no layers. */
async function hostileImageArchive(rng: Random, outside: string): Promise<Uint8Array> {
  const kind = rng.int(6);
  const manifest = (value: unknown) => ({
    header: { name: "manifest.json" },
    body: JSON.stringify(value),
  });
  switch (kind) {
    case 0:
      return tarBytes([manifest([{ Config: "../../../../../etc/passwd", Layers: [] }])]);
    case 1:
      return tarBytes([manifest([{ Config: "c.json", RepoTags: ["fuzz:x"], Layers: ["../l"] }])]);
    case 2:
      return tarBytes([manifest({ not: "a list" })]);
    case 3:
      return tarBytes([
        { header: { name: "index.json" }, body: '{"schemaVersion":2,"manifests":[{"digest":5}]}' },
        { header: { name: "oci-layout" }, body: '{"imageLayoutVersion":"1.0.0"}' },
      ]);
    case 4:
      return tarBytes([
        manifest([{ Config: "c.json", RepoTags: ["fuzz:x"], Layers: ["l.tar"] }]),
        { header: { name: "c.json" }, body: '{"rootfs":{"type":"layers","diff_ids":[]}}' },
        { header: { name: "l.tar" }, body: await hostileTar(rng, outside) },
      ]);
    default:
      return hostileTar(rng, outside);
  }
}

// ---------------------------------------------------------------------------------------------
// Cases.

interface FuzzCase {
  method: string;
  path: string;
  body?: string | Uint8Array;
  contentType?: string;
  /** A 200 whose streamed body carries an error is a refusal (load answers so, as Docker). */
  streamed?: boolean;
}

interface Fixture {
  container: string;
  outside: string;
}

async function generate(rng: Random, fixture: Fixture): Promise<FuzzCase> {
  const prefix = rng.pick(["", "/v1.41", "/v1.24", "/v9.99", "/v1.41/"]);
  const id = missingRef(rng);
  const own = fixture.container;
  const json = (value: unknown) => JSON.stringify(value);
  const pick = rng.int(30);
  const c = (method: string, path: string, body?: string | Uint8Array, streamed = false) => ({
    method,
    path: prefix + path,
    body,
    contentType: rng.int(5) === 0 ? "text/plain" : "application/json",
    streamed,
  });
  switch (pick) {
    case 0:
    case 1:
    case 2:
      return c("POST", `/containers/create?name=${badValue(rng)}x-fuzz`, json(createBody(rng)));
    case 3:
      return c("POST", `/containers/create`, brokenJson(rng));
    case 4:
      return c(
        "POST",
        `/containers/create?name=${encodeURIComponent(rng.pick(["/", "..", "a b", "-x", "é"]))}`,
        json({ Image: missingRef(rng) }),
      );
    case 5:
      return c(
        rng.pick(["POST", "DELETE"]),
        `/containers/${id}${
          rng.pick([
            "/start",
            "/stop?t=" + badValue(rng),
            "/restart",
            "/kill?signal=" + badValue(rng),
            "/pause",
            "/unpause",
            "/rename?name=" + badValue(rng),
            "/wait?condition=" + badValue(rng),
            "?force=1&v=1",
            "/resize?h=" + badValue(rng) + "&w=" + badValue(rng),
          ])
        }`,
      );
    case 6:
      return c(
        "POST",
        `/containers/${id}/update`,
        rng.int(2) ? brokenJson(rng) : json(createBody(rng)),
      );
    case 7:
      return c(
        "POST",
        `/containers/${own}/update`,
        json({ Memory: wrongType(rng, 0), CpuShares: rng.pick([1.5, "x", [], {}]) }),
      );
    case 8:
      return c(
        "GET",
        `/containers/json?all=${badValue(rng)}&limit=${badValue(rng)}&filters=${badFilters(rng)}`,
      );
    case 9:
      return c(
        rng.pick(["GET", "HEAD"]),
        `/containers/${rng.pick([own, id])}/archive?path=${
          encodeURIComponent(rng.pick([
            "",
            "../../../../../../etc/shadow",
            `${"../".repeat(10)}${fixture.outside.slice(1)}/marker`,
            "/proc/self/root/etc/passwd",
            "/proc/1/root",
            "relative/path",
            "/\u0000/x",
            "/" + "a/".repeat(3000),
            "/nonexistent/" + rng.string(10),
          ]))
        }`,
      );
    case 10:
    case 11:
    case 12:
      return c(
        "PUT",
        `/containers/${rng.pick([own, own, id])}/archive?path=${
          encodeURIComponent(
            rng.pick(["/tmp", "/", "/tmp/../../..", "../..", "/nonexistent", "/etc/hostname", ""]),
          )
        }&noOverwriteDirNonDir=${badValue(rng)}`,
        await hostileTar(rng, fixture.outside),
      );
    case 13:
    case 14:
      return {
        ...c("POST", `/images/load?quiet=${rng.pick(["0", "1"])}`, undefined, true),
        body: await hostileImageArchive(rng, fixture.outside),
        contentType: "application/x-tar",
      };
    case 15:
    case 16:
      return {
        ...c(
          "POST",
          `/images/create?fromSrc=-&repo=${
            encodeURIComponent(rng.pick(["", "Bad Repo", "x/../y", "a:b:c", "@@", "UPPER"]))
          }&tag=${badValue(rng)}&changes=${badValue(rng)}`,
        ),
        body: await hostileTar(rng, fixture.outside, [2]),
        contentType: "application/x-tar",
      };
    case 17:
      return c(
        "POST",
        `/images/create?fromImage=${
          encodeURIComponent(rng.pick(["a//b", "UP/../x", "x:", "@sha256:", ":tag", "a b"]))
        }&tag=${badValue(rng)}`,
      );
    case 18:
      return c(
        rng.pick(["GET", "DELETE", "POST"]),
        `/images/${id}${rng.pick(["/json", "", "/tag?repo=x&tag=y", "/history", "/get", "/push"])}`,
      );
    case 19:
      return c("GET", `/images/json?all=${badValue(rng)}&filters=${badFilters(rng)}`);
    case 20:
      return c(
        "POST",
        "/volumes/create",
        rng.int(2) ? brokenJson(rng) : json({
          Name: rng.pick(["../x", "/abs", "a/b", ".", "..", "-x", "x".repeat(300), 5, [], {}]),
          Driver: rng.pick(["local", 5, "nonexistent-driver"]),
          DriverOpts: rng.pick([{ o: 5 }, "x", [1]]),
          Labels: rng.pick([{ a: 1 }, "x"]),
        }),
      );
    case 21:
      return c(rng.pick(["GET", "DELETE"]), `/volumes/${id}?force=${badValue(rng)}`);
    case 22:
      return c(
        "POST",
        "/networks/create",
        rng.int(2) ? brokenJson(rng) : json({
          Name: rng.pick(["", 5, [], "a/b", "x".repeat(300)]),
          Driver: rng.pick(["bridge", 7, "nonexistent"]),
          IPAM: rng.pick([
            { Config: [{ Subnet: "999.1.1.0/24" }] },
            { Config: "x" },
            { Config: [{ Subnet: 5 }] },
          ]),
        }),
      );
    case 23:
      return c(
        rng.pick(["GET", "DELETE", "POST"]),
        `/networks/${id}${rng.pick(["", "/connect", "/disconnect"])}`,
        rng.int(2) ? brokenJson(rng) : json({ Container: wrongType(rng, "") }),
      );
    case 24:
      return c(
        "POST",
        `/containers/${rng.pick([own, id])}/exec`,
        rng.int(2) ? brokenJson(rng) : json({
          Cmd: rng.pick([5, [1, 2], {}, true]),
          Env: rng.pick([[5], "x"]),
          Tty: rng.pick(["yes", 1]),
        }),
      );
    case 25:
      return c(
        rng.pick(["GET", "POST"]),
        `/exec/${id}${rng.pick(["/json", "/start", "/resize?h=-1&w=" + badValue(rng)])}`,
        rng.int(2) ? brokenJson(rng) : undefined,
      );
    case 26:
      return c(
        "GET",
        `/containers/${rng.pick([own, id])}${
          rng.pick([
            "/logs?stdout=1&follow=0&tail=" + badValue(rng) + "&since=" + badValue(rng),
            "/top?ps_args=" +
            encodeURIComponent(rng.pick(["; rm -rf /", "$(id)", "-o pid`id`", "--x"])),
            "/stats?stream=0&one-shot=" + badValue(rng),
            "/changes",
            "/json?size=" + badValue(rng),
          ])
        }`,
      );
    case 27:
      return c(
        "POST",
        rng.pick(["/containers/prune", "/volumes/prune", "/images/prune", "/networks/prune"]) +
          `?filters=${badFilters(rng)}`,
      );
    case 28:
      return c(
        "GET",
        `/events?since=${badValue(rng)}&until=${rng.pick(["1", "-5", "0.5", "x"])}&filters=${
          badFilters(rng)
        }`,
      );
    default:
      return c(
        rng.pick(["GET", "POST", "PUT", "PATCH", "OPTIONS", "DELETE"]),
        rng.pick([
          "/" + rng.string(rng.int(50)).replace(/[?#%\s]/g, "_"),
          "/containers/" + "a/".repeat(200),
          "/v1.41/v1.41/containers/json",
          "/images/" + "..%2F".repeat(20) + "json",
          "//containers//json",
        ]),
        rng.int(2) ? brokenJson(rng) : undefined,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Sending.

interface Outcome {
  index: number;
  method: string;
  path: string;
  status: number;
  ms: number;
  body: string;
}

async function send(client: Deno.HttpClient, index: number, fuzz: FuzzCase): Promise<Outcome> {
  const started = performance.now();
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  const outcome = { index, method: fuzz.method, path: fuzz.path.slice(0, 200) };
  try {
    const response = await fetch(`http://pouch${fuzz.path}`, {
      method: fuzz.method,
      client,
      signal,
      headers: fuzz.body === undefined ? {} : { "Content-Type": fuzz.contentType ?? "" },
      body: fuzz.method === "GET" || fuzz.method === "HEAD" ? undefined : fuzz.body as BodyInit,
    });
    const text = await response.text();
    let status = response.status;
    // A streamed answer that ends in an error line is the refusal Docker's streams give.
    if (fuzz.streamed && status === 200 && text.includes('"errorDetail"')) status = 400;
    return { ...outcome, status, ms: performance.now() - started, body: text.slice(0, 300) };
  } catch (err) {
    const timedOut = signal.aborted;
    return {
      ...outcome,
      status: timedOut ? -1 : -2,
      ms: performance.now() - started,
      body: String(err).slice(0, 300),
    };
  }
}

/** Malformed HTTP on raw connections: the daemon must survive them all. */
async function rawGarbage(socket: string, rng: Random): Promise<number> {
  const requests = [
    "GARBAGE\r\n\r\n",
    "GET / HTTP/9.9\r\n\r\n",
    "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
    "POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    `GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`,
    "GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "\u0000\u0001\u0002\r\n\r\n",
    "POST /containers/x/attach?stream=1 HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
    'POST /exec/x/start HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\n{"',
  ];
  let sent = 0;
  for (let round = 0; round < 3; round++) {
    for (const text of [...requests, new TextDecoder().decode(rng.bytes(200))]) {
      const conn = await Deno.connect({ transport: "unix", path: socket });
      try {
        await conn.write(encoder.encode(text));
        const buffer = new Uint8Array(4096);
        await Promise.race([
          conn.read(buffer).catch(() => null),
          new Promise((resolve) => setTimeout(resolve, 300)),
        ]);
      } finally {
        conn.close();
      }
      sent++;
    }
  }
  return sent;
}

async function stateOf(daemon: TestDaemon, outside: string): Promise<unknown> {
  const get = async (path: string) => {
    const { status, body } = await daemon.api("GET", path);
    assert.equal(status, 200, `${path}: ${body}`);
    return JSON.parse(body);
  };
  const containers = (await get("/containers/json?all=1")) as Array<Record<string, unknown>>;
  const images = (await get("/images/json?all=1")) as Array<Record<string, unknown>>;
  const volumes = (await get("/volumes")) as { Volumes: Array<Record<string, unknown>> };
  const networks = (await get("/networks")) as Array<Record<string, unknown>>;
  const outsideFiles: string[] = [];
  for await (const entry of Deno.readDir(outside)) outsideFiles.push(entry.name);
  const tmpPwned: string[] = [];
  for await (const entry of Deno.readDir("/tmp")) {
    if (entry.name.startsWith("pouch-fuzz-pwned")) tmpPwned.push(entry.name);
  }
  return {
    containers: containers.map((c) => [c.Id, c.Names, c.State, c.Image]).sort(),
    images: images.map((i) => [i.Id, i.RepoTags]).sort(),
    volumes: volumes.Volumes.map((v) => v.Name).sort(),
    networks: networks.map((n) => [n.Id, n.Name]).sort(),
    outside: outsideFiles.sort(),
    tmpPwned,
  };
}

Deno.test("API fuzzing: malformed requests get 4xx, the daemon survives, state is unchanged", async () => {
  await withBusyboxDaemon(async (daemon) => {
    const outside = `${daemon.dir}/outside`;
    await Deno.mkdir(outside);
    const marker = `host-secret-${crypto.randomUUID()}`;
    await Deno.writeTextFile(`${outside}/marker`, marker);
    const created = await daemon.pouch([
      "run",
      "-d",
      "--name",
      "fuzz-target",
      "busybox",
      "sleep",
      "600",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const container = created.stdout.trim();
    assert.equal((await daemon.pouch(["volume", "create", "fuzz-volume"])).code, 0);

    const before = await stateOf(daemon, outside);
    const rng = new Random(SEED);
    const cases: FuzzCase[] = [];
    for (let i = 0; i < COUNT; i++) cases.push(await generate(rng, { container, outside }));

    const client = Deno.createHttpClient({ proxy: { transport: "unix", path: daemon.socket } });
    const outcomes: Outcome[] = [];
    const started = performance.now();
    try {
      let next = 0;
      await Promise.all(Array.from({ length: WORKERS }, async () => {
        while (next < cases.length) {
          const index = next++;
          outcomes.push(await send(client, index, cases[index]!));
        }
      }));
    } finally {
      client.close();
    }
    const raw = await rawGarbage(daemon.socket, rng);
    const dump = Deno.env.get("POUCH_FUZZ_DUMP");
    if (dump) {
      const bodies = outcomes.map((o) => {
        const body = cases[o.index]!.body;
        return { ...o, request: typeof body === "string" ? body.slice(0, 300) : body?.length };
      });
      await Deno.writeTextFile(dump, JSON.stringify(bodies, null, 1));
    }
    const seconds = (performance.now() - started) / 1000;

    const ping = await daemon.api("GET", "/_ping");
    assert.equal(ping.status, 200, "the daemon answers after the fuzzing");
    const count = (test: (o: Outcome) => boolean) => outcomes.filter(test).length;
    const figures = {
      seed: SEED,
      requests: outcomes.length,
      rawConnections: raw,
      seconds: Number(seconds.toFixed(1)),
      "4xx": count((o) => o.status >= 400 && o.status < 500),
      "2xx/3xx": count((o) => o.status >= 200 && o.status < 400),
      "5xx": count((o) => o.status >= 500),
      timeouts: count((o) => o.status === -1),
      errors: count((o) => o.status === -2),
      slowestMs: Math.round(Math.max(...outcomes.map((o) => o.ms))),
    };
    // The figures README reports: printed for whoever runs the test, not daemon output.
    // deno-lint-ignore no-console
    console.log(`fuzz figures: ${JSON.stringify(figures)}`);
    const bad = outcomes.filter((o) => o.status >= 500 || o.status < 0)
      .sort((a, b) => a.index - b.index);
    assert.deepEqual(
      bad.slice(0, 20).map((o) => `#${o.index} ${o.method} ${o.path} -> ${o.status} ${o.body}`),
      [],
      `${bad.length} requests failed (seed ${SEED})`,
    );
    for (const o of outcomes) {
      assert.ok(!o.body.includes(marker), `#${o.index} ${o.path} leaked a host file`);
    }
    assert.deepEqual(await stateOf(daemon, outside), before, "state changed");
    // The target still runs and its root holds nothing from outside.
    const inspect = JSON.parse((await daemon.api("GET", `/containers/${container}/json`)).body);
    assert.equal(inspect.State.Status, "running");
  });
});
