import assert from "node:assert/strict";
import { respond, startFakeServer } from "./_fake_server.ts";
import {
  ApiClient,
  ApiError,
  buildPath,
  ConnectError,
  jsonMessages,
  parseHost,
  resolveTls,
} from "./client.ts";
import { BufferedReader, type ByteSource, chunkedBody } from "./http.ts";
import { Demultiplexer, encodeFrame } from "./stream.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A source that hands out `data` a few bytes at a time. */
function trickle(data: string, step: number): ByteSource {
  const bytes = encoder.encode(data);
  let off = 0;
  return {
    read(p) {
      if (off >= bytes.length) return Promise.resolve(null);
      const n = Math.min(step, p.length, bytes.length - off);
      p.set(bytes.subarray(off, off + n));
      off += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("chunkedBody() decodes chunks split at any byte, with extensions and trailers", async () => {
  const wire = "5;ext=1\r\nhello\r\n1\r\n \r\nb\r\nworld, more\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (const step of [1, 2, 5, 100]) {
    const reader = new BufferedReader(trickle(wire, step));
    const text = await new Response(chunkedBody(reader)).text();
    assert.equal(text, "hello world, more", `step ${step}`);
    assert.equal(decoder.decode(await reader.readExactly(4)), "NEXT");
  }
});

Deno.test("buildPath() prefixes the API version and encodes the query", () => {
  assert.equal(
    buildPath("/containers/json", { all: true, limit: 2, x: undefined }),
    "/v1.41/containers/json?all=1&limit=2",
  );
  assert.equal(
    buildPath("/images/create", { changes: ["CMD a", "ENV b=c"] }),
    "/v1.41/images/create?changes=CMD+a&changes=ENV+b%3Dc",
  );
});

Deno.test("parseHost() reads unix and tcp hosts with Docker's default ports", () => {
  assert.deepEqual(parseHost("unix:///run/p.sock"), { socketPath: "/run/p.sock" });
  assert.deepEqual(parseHost("tcp://1.2.3.4:2380"), { hostname: "1.2.3.4", port: 2380 });
  assert.deepEqual(parseHost("tcp://h", { tls: true }), { hostname: "h", port: 2376 });
  assert.deepEqual(parseHost("tcp://h"), { hostname: "h", port: 2375 });
  assert.deepEqual(parseHost("tcp://[::1]:9"), { hostname: "::1", port: 9 });
  assert.throws(() => parseHost("tcp://h:99999"), /invalid host/);
  assert.throws(() => parseHost("ssh://h"), /invalid host/);
});

Deno.test("ApiClient reads Content-Length JSON and turns error answers into ApiError", async () => {
  await using server = await startFakeServer((req) => {
    if (req.path === "/v1.41/version") return { status: 200, json: { Version: "1.0" } };
    return { status: 404, json: { message: "No such container: web" } };
  });
  const client = new ApiClient(`unix://${server.socketPath}`);
  assert.deepEqual(await client.json("GET", "/version"), { Version: "1.0" });
  await assert.rejects(
    client.json("GET", "/containers/web/json"),
    (e) => e instanceof ApiError && e.status === 404 && e.message === "No such container: web",
  );
});

Deno.test("ApiClient streams a chunked answer as it arrives", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  await using server = await startFakeServer(async (req) => {
    await req.conn.write(encoder.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    await req.conn.write(encoder.encode('11\r\n{"status":"one"}\n\r\n'));
    await released;
    await req.conn.write(encoder.encode('10\r\n{"stream":"two"}\r\n0\r\n\r\n'));
    req.conn.close();
    return "hijacked" as const;
  });
  const client = new ApiClient(`unix://${server.socketPath}`);
  const res = await client.request("GET", "/events");
  const messages = jsonMessages(res.body);
  assert.deepEqual((await messages.next()).value, { status: "one" });
  release();
  assert.deepEqual((await messages.next()).value, { stream: "two" });
  assert.equal((await messages.next()).done, true);
});

Deno.test("ApiClient uploads a ReadableStream body chunked", async () => {
  await using server = await startFakeServer((req) => ({
    status: 200,
    json: {
      encoding: req.headers.get("transfer-encoding"),
      type: req.headers.get("content-type"),
      body: decoder.decode(req.body),
    },
  }));
  const client = new ApiClient(`unix://${server.socketPath}`);
  const body = ReadableStream.from([
    encoder.encode("tar"),
    encoder.encode(""),
    encoder.encode("ball"),
  ]);
  const answer = await client.json("POST", "/images/load", {
    body,
    contentType: "application/x-tar",
  });
  assert.deepEqual(answer, { encoding: "chunked", type: "application/x-tar", body: "tarball" });
});

Deno.test("ApiClient hijacks with 101, streams both ways and half-closes", async () => {
  await using server = await startFakeServer(async (req) => {
    assert.equal(req.headers.get("upgrade"), "tcp");
    assert.equal(req.headers.get("connection"), "Upgrade");
    await respond(req.conn, 101, "", { Connection: "Upgrade", Upgrade: "tcp" });
    // Echo stdin back as stdout frames until the client half-closes, then say goodbye.
    while (true) {
      const chunk = await req.reader.readSome();
      if (chunk === null) break;
      await req.conn.write(encodeFrame(1, chunk));
    }
    await req.conn.write(encodeFrame(2, "bye"));
    req.conn.close();
    return "hijacked" as const;
  });
  const client = new ApiClient(`unix://${server.socketPath}`);
  const conn = await client.hijack("POST", "/containers/x/attach", { query: { stream: true } });
  assert.equal(conn.status, 101);
  await conn.write(encoder.encode("ping"));
  await conn.closeWrite();
  const demux = new Demultiplexer();
  const got: string[] = [];
  while (true) {
    const chunk = await conn.reader.readSome();
    if (chunk === null) break;
    for (const f of demux.push(chunk)) got.push(`${f.stream}:${decoder.decode(f.data)}`);
  }
  conn.close();
  assert.deepEqual(got, ["1:ping", "2:bye"]);
});

Deno.test("ApiClient says it cannot connect when no daemon listens", async () => {
  const client = new ApiClient("unix:///nonexistent/pouchd.sock");
  await assert.rejects(
    client.json("GET", "/version"),
    (e) =>
      e instanceof ConnectError &&
      e.message ===
        "Cannot connect to the pouch daemon at unix:///nonexistent/pouchd.sock. Is the daemon running?",
  );
});

Deno.test("resolveTls() reads the cert path's files as the Docker CLI, and needs the CA to verify", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const settings = { tls: false, verify: true, certPath: dir };
    assert.equal(resolveTls({ ...settings, verify: false }), undefined);
    assert.throws(() => resolveTls(settings), /--tlsverify needs it/);
    await Deno.writeTextFile(`${dir}/ca.pem`, "CA");
    assert.deepEqual(resolveTls(settings), { caCerts: ["CA"] });
    await Deno.writeTextFile(`${dir}/cert.pem`, "CERT");
    assert.throws(() => resolveTls(settings), /needs its key/);
    await Deno.writeTextFile(`${dir}/key.pem`, "KEY");
    assert.deepEqual(resolveTls(settings), { caCerts: ["CA"], cert: "CERT", key: "KEY" });
    // Files named by flags must exist.
    assert.throws(
      () => resolveTls({ ...settings, cert: `${dir}/missing.pem` }),
      /could not read the TLS certificate .*missing\.pem/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
