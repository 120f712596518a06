import assert from "node:assert/strict";
import { isInvalidArgument } from "./errors.ts";
import {
  gzip,
  maybeGunzip,
  parsePax,
  readTar,
  type TarInput,
  tarStream,
  TarWriter,
} from "./tar.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function streamOf(bytes: Uint8Array, chunkSize = bytes.length || 1): ReadableStream<Uint8Array> {
  let pos = 0;
  return new ReadableStream({
    pull(controller) {
      if (pos >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(pos, pos + chunkSize));
      pos += chunkSize;
    },
  });
}

interface Seen {
  name: string;
  type: string;
  linkname: string;
  mode: number;
  uid: number;
  body: string;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Seen[]> {
  const seen: Seen[] = [];
  for await (const e of readTar(stream)) {
    seen.push({
      name: e.name,
      type: e.type,
      linkname: e.linkname,
      mode: e.mode,
      uid: e.uid,
      body: decoder.decode(await bytesOf(e.body)),
    });
  }
  return seen;
}

const longDir = "d".repeat(120);
const longBase = "f".repeat(150);

const roundTrips: Array<{ name: string; input: TarInput; expected: Partial<Seen> }> = [
  {
    name: "regular file",
    input: { header: { name: "etc/passwd", mode: 0o600, uid: 7 }, body: "root:x:0:0\n" },
    expected: { name: "etc/passwd", type: "file", mode: 0o600, uid: 7, body: "root:x:0:0\n" },
  },
  {
    name: "empty file",
    input: { header: { name: "empty" }, body: "" },
    expected: { name: "empty", type: "file", body: "" },
  },
  {
    name: "directory gets a trailing slash",
    input: { header: { name: "tmp", type: "directory", mode: 0o1777 } },
    expected: { name: "tmp/", type: "directory", mode: 0o1777, body: "" },
  },
  {
    name: "symlink",
    input: { header: { name: "bin/sh", type: "symlink", linkname: "/bin/busybox" } },
    expected: { name: "bin/sh", type: "symlink", linkname: "/bin/busybox", body: "" },
  },
  {
    name: "hard link",
    input: { header: { name: "a2", type: "hardlink", linkname: "a1" } },
    expected: { name: "a2", type: "hardlink", linkname: "a1" },
  },
  {
    name: "name over 100 bytes uses the ustar prefix",
    input: { header: { name: `${longDir}/file` }, body: "x" },
    expected: { name: `${longDir}/file`, body: "x" },
  },
  {
    name: "name that cannot be split uses PAX",
    input: { header: { name: `${longDir}/${longBase}` }, body: "y" },
    expected: { name: `${longDir}/${longBase}`, body: "y" },
  },
  {
    name: "long link target uses PAX",
    input: { header: { name: "l", type: "symlink", linkname: `/${longDir}/${longBase}` } },
    expected: { name: "l", linkname: `/${longDir}/${longBase}` },
  },
  {
    name: "non-ASCII name",
    input: { header: { name: "données/été.txt" }, body: "ok" },
    expected: { name: "données/été.txt", body: "ok" },
  },
  {
    name: "large uid uses PAX",
    input: { header: { name: "big-uid", uid: 100_000_000 }, body: "" },
    expected: { name: "big-uid", uid: 100_000_000 },
  },
];

for (const c of roundTrips) {
  Deno.test(`readTar() reads back what TarWriter wrote: ${c.name}`, async () => {
    const seen = await readAll(tarStream([c.input]));
    assert.deepEqual(seen.length, 1);
    for (const [key, value] of Object.entries(c.expected)) {
      assert.deepEqual(seen[0]![key as keyof Seen], value, key);
    }
  });
}

Deno.test("readTar() reads input that arrives one byte at a time", async () => {
  const tar = await bytesOf(tarStream([
    { header: { name: "a" }, body: "hello" },
    { header: { name: `${longDir}/${longBase}` }, body: "world" },
  ]));
  const seen = await readAll(streamOf(tar, 1));
  assert.deepEqual(seen.map((s) => [s.name, s.body]), [["a", "hello"], [
    `${longDir}/${longBase}`,
    "world",
  ]]);
});

Deno.test("readTar() decompresses gzip input", async () => {
  const gz = gzip(tarStream([{ header: { name: "a" }, body: "zipped" }]));
  const seen = await readAll(gz);
  assert.deepEqual(seen.map((s) => s.body), ["zipped"]);
});

Deno.test("readTar() skips bodies the consumer did not read", async () => {
  const big = new Uint8Array(300_000).fill(7);
  const names: string[] = [];
  let last = "";
  for await (
    const e of readTar(tarStream([
      { header: { name: "big" }, body: big },
      { header: { name: "partial" }, body: big },
      { header: { name: "small" }, body: "end" },
    ]))
  ) {
    names.push(e.name);
    if (e.name === "partial") {
      const reader = e.body.getReader();
      await reader.read(); // read a little, then move on
      reader.releaseLock();
    }
    if (e.name === "small") last = decoder.decode(await bytesOf(e.body));
  }
  assert.deepEqual(names, ["big", "partial", "small"]);
  assert.deepEqual(last, "end");
});

Deno.test("readTar() errors a body read after moving on", async () => {
  const entries = readTar(tarStream([
    { header: { name: "a" }, body: "aaaa" },
    { header: { name: "b" }, body: "bbbb" },
  ]));
  const first = await entries.next();
  assert(!first.done);
  await entries.next();
  await rejects(() => bytesOf(first.value.body));
  await entries.return();
});

Deno.test("readTar() stops early when the consumer breaks", async () => {
  let cancelled = false;
  const tar = await bytesOf(tarStream([
    { header: { name: "a" }, body: "1" },
    { header: { name: "b" }, body: "2" },
  ]));
  const source = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(tar.slice(0, 1024));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const e of readTar(source)) {
    assert.deepEqual(e.name, "a");
    break;
  }
  assert(cancelled);
});

/** A header block made by hand, to test what TarWriter never writes (GNU L/K, PAX g). */
function rawHeader(name: string, typeflag: string, size: number, magic = "ustar\0"): Uint8Array {
  const block = new Uint8Array(512);
  const put = (offset: number, value: string) => block.set(encoder.encode(value), offset);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, size.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  put(148, "        ");
  put(156, typeflag);
  put(257, magic);
  put(263, magic === "ustar\0" ? "00" : " \0");
  let sum = 0;
  for (const b of block) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return block;
}

function withBody(header: Uint8Array, body: string): Uint8Array[] {
  const bytes = encoder.encode(body);
  const padded = new Uint8Array(Math.ceil(bytes.length / 512) * 512);
  padded.set(bytes);
  return [header, padded];
}

function join(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

Deno.test("readTar() applies GNU long names and long links", async () => {
  const longName = `${"n".repeat(200)}/file`;
  const longLink = `/${"t".repeat(200)}`;
  const gnu = "ustar  \0";
  const tar = join([
    ...withBody(rawHeader("././@LongLink", "L", longName.length + 1, gnu), longName + "\0"),
    ...withBody(rawHeader("././@LongLink", "K", longLink.length + 1, gnu), longLink + "\0"),
    rawHeader("short", "2", 0, gnu),
    ...withBody(rawHeader("plain", "0", 2, gnu), "hi"),
    new Uint8Array(1024),
  ]);
  const seen = await readAll(streamOf(tar));
  assert.deepEqual(seen.map((s) => [s.name, s.type, s.linkname, s.body]), [
    [longName, "symlink", longLink, ""],
    ["plain", "file", "", "hi"],
  ]);
});

Deno.test("readTar() applies PAX global headers to every later entry, local ones to one", async () => {
  const global = "15 uid=1234567\n";
  const local = "20 path=renamed.txt\n";
  const tar = join([
    ...withBody(rawHeader("pax_global_header", "g", global.length), global),
    ...withBody(rawHeader("PaxHeaders/x", "x", local.length), local),
    ...withBody(rawHeader("x", "0", 1), "1"),
    ...withBody(rawHeader("y", "0", 1), "2"),
    new Uint8Array(1024),
  ]);
  const seen = await readAll(streamOf(tar));
  assert.deepEqual(seen.map((s) => [s.name, s.uid]), [["renamed.txt", 1234567], ["y", 1234567]]);
});

Deno.test("parsePax() parses length-prefixed records", () => {
  assert.deepEqual(parsePax(encoder.encode("20 path=a/b/c/d.txt\n11 size=42\n")), {
    path: "a/b/c/d.txt",
    size: "42",
  });
});

const malformed: Array<{ name: string; bytes: () => Promise<Uint8Array> }> = [
  { name: "not a tarball", bytes: () => Promise.resolve(encoder.encode("hello ".repeat(200))) },
  {
    name: "bad checksum",
    bytes: async () => {
      const tar = await bytesOf(tarStream([{ header: { name: "a" }, body: "x" }]));
      tar[0] = "b".charCodeAt(0);
      return tar;
    },
  },
  {
    name: "truncated body",
    bytes: async () => {
      const tar = await bytesOf(tarStream([{ header: { name: "a" }, body: "x".repeat(2000) }]));
      return tar.slice(0, 1000);
    },
  },
  {
    name: "truncated header",
    bytes: async () => {
      const tar = await bytesOf(tarStream([{ header: { name: "a" }, body: "x" }]));
      return tar.slice(0, 1024 + 100);
    },
  },
  {
    name: "truncated gzip",
    bytes: async () => {
      const gz = await bytesOf(
        gzip(tarStream([{ header: { name: "a" }, body: "x".repeat(5000) }])),
      );
      return gz.slice(0, gz.length - 12);
    },
  },
];

for (const c of malformed) {
  Deno.test(`readTar() rejects with InvalidArgument: ${c.name}`, async () => {
    const bytes = await c.bytes();
    const err = await rejects(() => readAll(streamOf(bytes)));
    assert(isInvalidArgument(err), String(err));
  });
}

Deno.test("readTar() reads what GNU tar writes, including long names", async () => {
  await using dir = await tempDir();
  const deep = `${dir.path}/src/${"x".repeat(90)}/${"y".repeat(90)}`;
  await Deno.mkdir(deep, { recursive: true });
  await Deno.writeTextFile(`${deep}/${"z".repeat(120)}.txt`, "deep");
  await Deno.symlink("target", `${dir.path}/src/link`);
  for (const format of ["gnu", "posix"]) {
    const out = await new Deno.Command("tar", {
      args: ["-C", `${dir.path}/src`, `--format=${format}`, "-cf", "-", "."],
      stdout: "piped",
    }).output();
    assert(out.success);
    const seen = await readAll(streamOf(out.stdout, 700));
    const file = seen.find((s) => s.name.endsWith(".txt"));
    assert.deepEqual(file?.name, `./${"x".repeat(90)}/${"y".repeat(90)}/${"z".repeat(120)}.txt`);
    assert.deepEqual(file?.body, "deep");
    assert.deepEqual(seen.find((s) => s.name === "./link")?.linkname, "target");
  }
});

Deno.test("GNU tar reads what TarWriter writes", async () => {
  await using dir = await tempDir();
  const tar = await bytesOf(tarStream([
    { header: { name: "dir", type: "directory" } },
    { header: { name: `dir/${longBase}` }, body: "long" },
    { header: { name: "dir/link", type: "symlink", linkname: longBase } },
  ]));
  await Deno.writeFile(`${dir.path}/t.tar`, tar);
  const out = await new Deno.Command("tar", {
    args: ["-C", dir.path, "-xf", `${dir.path}/t.tar`],
  }).output();
  assert(out.success, decoder.decode(out.stderr));
  assert.deepEqual(await Deno.readTextFile(`${dir.path}/dir/${longBase}`), "long");
  assert.deepEqual(await Deno.readLink(`${dir.path}/dir/link`), longBase);
});

Deno.test("TarWriter rejects a stream body of the wrong size", async () => {
  const writer = new TarWriter();
  const drained = bytesOf(writer.readable).catch((err) => err);
  await rejects(() => writer.add({ name: "a", size: 10 }, streamOf(encoder.encode("short"))));
  await writer.abort(new Error("stop"));
  assert((await drained) instanceof Error);
});

Deno.test("maybeGunzip() passes plain bytes through unchanged", async () => {
  const bytes = encoder.encode("plain text");
  assert.deepEqual(await bytesOf(await maybeGunzip(streamOf(bytes, 1))), bytes);
  assert.deepEqual(
    await bytesOf(await maybeGunzip(streamOf(new Uint8Array(0)))),
    new Uint8Array(0),
  );
});

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "pouch-tar-test-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** The error `fn` rejects with; fails the test when it resolves. */
async function rejects(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}
