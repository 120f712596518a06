import assert from "node:assert/strict";
import { type Http1Handler, serveHttp1 } from "./http1.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HIJACKED = "x-test-hijacked";

/** Serves `handler` on a unix socket in a temp dir for the test's length. */
async function withServer(
  handler: Http1Handler,
  test: (connect: () => Promise<Deno.UnixConn>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/http.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      served.push(serveHttp1(conn, handler, { hijackedHeader: HIJACKED }));
    }
  })();
  try {
    await test(() => Deno.connect({ transport: "unix", path }));
  } finally {
    listener.close();
    await accepting;
    await Promise.all(served);
    await Deno.remove(dir, { recursive: true });
  }
}

/** Reads from `conn` until `done(text so far)` holds or the connection ends. */
async function readUntil(conn: Deno.Conn, done: (text: string) => boolean): Promise<string> {
  const buffer = new Uint8Array(65536);
  let text = "";
  while (!done(text)) {
    const count = await conn.read(buffer);
    if (count === null) break;
    text += decoder.decode(buffer.subarray(0, count));
  }
  return text;
}

Deno.test("http1: keep-alive requests, absolute-form targets, sized and chunked answers", async () => {
  const seen: string[] = [];
  await withServer(async (request) => {
    const url = new URL(request.url);
    seen.push(`${request.method} ${url.pathname}${url.search} ${await request.text()}`);
    return new Response(JSON.stringify({ path: url.pathname }), {
      headers: { "content-type": "application/json" },
    });
  }, async (connect) => {
    const conn = await connect();
    await conn.write(encoder.encode(
      "GET /_ping?x=1 HTTP/1.1\r\nHost: a\r\n\r\n" +
        "POST http://pouch/containers/create HTTP/1.1\r\nHost: a\r\n" +
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n" +
        "PUT /x HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" +
        "wxyz",
    ));
    const text = await readUntil(conn, () => false);
    conn.close();
    assert.deepEqual(seen, ["GET /_ping?x=1 ", "POST /containers/create abcde", "PUT /x wxyz"]);
    const answers = text.split("HTTP/1.1 200 OK\r\n").slice(1);
    assert.equal(answers.length, 3);
    assert.match(answers[1]!, /HTTP\/1\.1 100 Continue\r\n\r\n$/);
    assert.match(answers[0]!, /content-length: 17\r\n\r\n\{"path":"\/_ping"\}$/);
    assert.match(answers[2]!, /connection: close\r\n/);
  });
});

Deno.test("http1: a streaming answer sends its head at once and ends when the client leaves", async () => {
  let cancelled: () => void;
  const cancelledPromise = new Promise<void>((resolve) => cancelled = resolve);
  let aborted = false;
  await withServer((request) => {
    request.signal.addEventListener("abort", () => aborted = true);
    let count = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // The first piece at once, then the next ones slowly.
        if (count++ > 0) await new Promise((resolve) => setTimeout(resolve, 50));
        controller.enqueue(encoder.encode(`event ${count}\n`));
      },
      cancel() {
        cancelled();
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }, async (connect) => {
    const conn = await connect();
    await conn.write(encoder.encode("GET /events HTTP/1.1\r\nHost: a\r\n\r\n"));
    const text = await readUntil(conn, (t) => t.includes("event 2"));
    assert.match(text, /transfer-encoding: chunked\r\n\r\n8\r\nevent 1\n\r\n/);
    conn.close();
    await cancelledPromise;
    assert.equal(aborted, true);
  });
});

Deno.test("http1: malformed requests get 400 and the connection closes", async () => {
  await withServer(() => new Response("never"), async (connect) => {
    for (const bad of ["NONSENSE\r\n\r\n", "GET /x HTTP/1.1\r\nno colon here\r\n\r\n"]) {
      const conn = await connect();
      await conn.write(encoder.encode(bad));
      const text = await readUntil(conn, () => false);
      conn.close();
      assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(text, /connection: close/);
    }
  });
});

Deno.test("http1: HEAD and 204 answers carry no body", async () => {
  await withServer((request) => {
    if (request.method === "HEAD") {
      return new Response("ignored", { headers: { "content-length": "7" } });
    }
    return new Response(null, { status: 204 });
  }, async (connect) => {
    const conn = await connect();
    await conn.write(encoder.encode(
      "HEAD /_ping HTTP/1.1\r\n\r\nDELETE /x HTTP/1.1\r\nConnection: close\r\n\r\n",
    ));
    const text = await readUntil(conn, () => false);
    conn.close();
    assert.equal(
      text,
      "HTTP/1.1 200 OK\r\ncontent-type: text/plain;charset=UTF-8\r\ncontent-length: 7\r\n\r\n" +
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
    );
  });
});

Deno.test("http1: an Upgrade request hands the connection to the route", async () => {
  let received = "";
  let ended = false;
  await withServer(async (request, upgrade) => {
    assert.ok(upgrade);
    assert.equal(await request.text(), '{"Detach":false}');
    const { socket, head } = upgrade;
    socket.write("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
    received += decoder.decode(head);
    socket.on("data", (chunk) => {
      received += decoder.decode(chunk);
      socket.write(chunk);
    });
    socket.on("end", () => {
      ended = true;
      socket.write("bye");
      socket.end();
    });
    return new Response(null, { headers: { [HIJACKED]: "1" } });
  }, async (connect) => {
    const conn = await connect();
    await conn.write(encoder.encode(
      "POST /exec/1/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n" +
        'Content-Length: 16\r\n\r\n{"Detach":false}early',
    ));
    assert.match(await readUntil(conn, (t) => t.includes("\r\n\r\n")), /^HTTP\/1\.1 101 /);
    await conn.write(encoder.encode("ping"));
    assert.equal(await readUntil(conn, (t) => t === "ping"), "ping");
    await conn.closeWrite();
    assert.equal(await readUntil(conn, () => false), "bye");
    conn.close();
    assert.equal(received, "earlyping");
    assert.equal(ended, true);
  });
});

Deno.test("http1: a request counts as in flight until its answer is written, not while idle", async () => {
  const events: string[] = [];
  const dir = await Deno.makeTempDir();
  const path = `${dir}/http.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const accepted = listener.accept();
  const conn = await Deno.connect({ transport: "unix", path });
  const serverConn = await accepted;
  const serving = serveHttp1(serverConn, () => {
    events.push("handled");
    return new Response("ok");
  }, {
    hijackedHeader: HIJACKED,
    track: () => {
      events.push("in");
      return () => events.push("out");
    },
  });
  try {
    await conn.write(encoder.encode("GET /a HTTP/1.1\r\n\r\n"));
    await readUntil(conn, (t) => t.endsWith("ok"));
    // The connection stays open and idle: the request is no longer in flight.
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(events, ["in", "handled", "out"]);
  } finally {
    conn.close();
    await serving;
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
