import assert from "node:assert/strict";
import { Logger } from "../engine/log.ts";
import { connectSpdy, type SpdyStream } from "./_spdy.ts";
import {
  channelFrame,
  chooseProtocol,
  execStatus,
  jsonObjects,
  startStreamingServer,
  type StreamRuntime,
  type StreamSink,
} from "./streaming.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const quiet = new Logger("error", () => {});

Deno.test("chooseProtocol() takes the server's most preferred protocol the client offers", () => {
  const supported = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];
  assert.equal(chooseProtocol("channel.k8s.io, v4.channel.k8s.io", supported), "v4.channel.k8s.io");
  assert.equal(chooseProtocol("base64.channel.k8s.io", supported), undefined);
  assert.equal(chooseProtocol(null, supported), undefined);
});

Deno.test("execStatus() words exit codes as the kubelet's v4 status", () => {
  assert.deepEqual(JSON.parse(execStatus({ exitCode: 0 })), { metadata: {}, status: "Success" });
  const failed = JSON.parse(execStatus({ exitCode: 3 }));
  assert.equal(failed.reason, "NonZeroExitCode");
  assert.deepEqual(failed.details.causes, [{ reason: "ExitCode", message: "3" }]);
  assert.equal(JSON.parse(execStatus({ error: "boom" })).message, "boom");
  assert.deepEqual(channelFrame(2, encoder.encode("x")), new Uint8Array([2, 120]));
});

/** A runtime whose exec echoes stdin to stdout in upper case and records resizes. */
function fakeRuntime(events: string[]): StreamRuntime {
  return {
    open(request, sink: StreamSink) {
      events.push(`open ${request.kind}`);
      return Promise.resolve({
        input: (chunk) => {
          if (chunk === null) {
            events.push("eof");
            sink.write("stderr", encoder.encode("bye"));
            sink.end({ exitCode: 5 });
            return;
          }
          sink.write("stdout", encoder.encode(decoder.decode(chunk).toUpperCase()));
        },
        resize: (size) => events.push(`resize ${size.width}x${size.height}`),
        detach: () => events.push("detach"),
      });
    },
    portAddress: (_sandbox, port) => ({ hostname: "127.0.0.1", port }),
  };
}

/** Opens `url` with `protocol` and collects frames by channel until the server closes. */
async function session(
  url: string,
  protocol: string,
  send: (ws: WebSocket) => void,
): Promise<Map<number, string>> {
  const ws = new WebSocket(url.replace(/^http/, "ws"), [protocol]);
  ws.binaryType = "arraybuffer";
  const frames = new Map<number, string>();
  const closed = new Promise<void>((resolve) => (ws.onclose = () => resolve()));
  ws.onmessage = (event) => {
    const frame = new Uint8Array(event.data as ArrayBuffer);
    frames.set(frame[0]!, (frames.get(frame[0]!) ?? "") + decoder.decode(frame.subarray(1)));
  };
  await new Promise<void>((resolve) => (ws.onopen = () => resolve()));
  send(ws);
  const timer = setTimeout(() => ws.close(), 5000);
  await closed;
  clearTimeout(timer);
  return frames;
}

Deno.test("the streaming server runs an exec over v5.channel.k8s.io: stdin, resize, status", async () => {
  const events: string[] = [];
  const server = await startStreamingServer({ port: 0, runtime: fakeRuntime(events), log: quiet });
  try {
    const url = server.urlFor({
      kind: "exec",
      containerId: "c",
      cmd: ["sh"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[0-9a-f]{32}$/);
    const frames = await session(url, "v5.channel.k8s.io", (ws) => {
      ws.send(channelFrame(0, encoder.encode("hello")));
      ws.send(channelFrame(4, encoder.encode('{"Width":80,"Height":24}')));
      ws.send(new Uint8Array([255, 0]));
    });
    assert.equal(frames.get(1), "HELLO");
    assert.equal(frames.get(2), "bye");
    assert.equal(JSON.parse(frames.get(3)!).details.causes[0].message, "5");
    assert.deepEqual(events.slice(0, 3), ["open exec", "resize 80x24", "eof"]);
    // A token serves one connection.
    const again = await fetch(url);
    assert.equal(again.status, 404);
    await again.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("the streaming server refuses requests without an upgrade, and unknown tokens", async () => {
  const server = await startStreamingServer({ port: 0, runtime: fakeRuntime([]), log: quiet });
  try {
    const url = server.urlFor({
      kind: "attach",
      containerId: "c",
      tty: false,
      stdin: false,
      stdout: true,
      stderr: true,
    });
    const spdy = await fetch(url, {
      method: "POST",
      headers: { "X-Stream-Protocol-Version": "v4" },
    });
    assert.equal(spdy.status, 400);
    assert.match(await spdy.text(), /WebSocket/);
    const unknown = await fetch(`${server.url}/exec/abcd`);
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("the streaming server forwards a port over portforward.k8s.io", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const echo = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    await conn.write(encoder.encode(`echo:${decoder.decode(buffer.subarray(0, n ?? 0))}`));
    conn.close();
  })();
  const server = await startStreamingServer({ port: 0, runtime: fakeRuntime([]), log: quiet });
  try {
    const url = server.urlFor({ kind: "portforward", sandboxId: "s", ports: [port] });
    const ws = new WebSocket(url.replace(/^http/, "ws"), ["portforward.k8s.io"]);
    ws.binaryType = "arraybuffer";
    const frames: Array<[number, Uint8Array]> = [];
    const closed = new Promise<void>((resolve) => (ws.onclose = () => resolve()));
    ws.onmessage = (event) => {
      const frame = new Uint8Array(event.data as ArrayBuffer);
      frames.push([frame[0]!, frame.subarray(1)]);
    };
    await new Promise<void>((resolve) => (ws.onopen = () => resolve()));
    ws.send(channelFrame(0, encoder.encode("ping")));
    await closed;
    await echo;
    // Each channel opens with the port, little-endian; then the data.
    const prefix = new Uint8Array([port & 0xff, port >> 8]);
    assert.deepEqual(frames[0], [0, prefix]);
    assert.deepEqual(frames[1], [1, prefix]);
    const data = frames.slice(2).filter(([channel]) => channel === 0)
      .map(([, body]) => decoder.decode(body)).join("");
    assert.equal(data, "echo:ping");
  } finally {
    listener.close();
    await server.close();
  }
});

/** Reads a stream to its end. */
function readAll(stream: SpdyStream): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    stream.listen((chunk) => (text += decoder.decode(chunk)), () => resolve(text));
  });
}

Deno.test("the streaming server runs an exec over SPDY/3.1 with v4.channel.k8s.io", async () => {
  const events: string[] = [];
  const server = await startStreamingServer({ port: 0, runtime: fakeRuntime(events), log: quiet });
  try {
    const url = server.urlFor({
      kind: "exec",
      containerId: "c",
      cmd: ["sh"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    });
    const { session, protocol } = await connectSpdy(url, [
      "v5.channel.k8s.io",
      "v4.channel.k8s.io",
      "channel.k8s.io",
    ]);
    assert.equal(protocol, "v4.channel.k8s.io");
    // As Kubernetes' client does: the error stream first, then one per channel.
    const error = await session.openStream({ streamtype: ["error"] });
    const errorText = readAll(error);
    const stdin = await session.openStream({ streamtype: ["stdin"] });
    const stdout = await session.openStream({ streamtype: ["stdout"] });
    const out = readAll(stdout);
    const stderr = await session.openStream({ streamtype: ["stderr"] });
    const err = readAll(stderr);
    await stdin.write(encoder.encode("spdy"));
    await stdin.finish();
    assert.equal(await out, "SPDY");
    assert.equal(await err, "bye");
    assert.equal(JSON.parse(await errorText).details.causes[0].message, "5");
    await session.done;
    assert.deepEqual(events.slice(0, 2), ["open exec", "eof"]);
  } finally {
    await server.close();
  }
});

Deno.test("the streaming server forwards a port over SPDY/3.1 with portforward.k8s.io", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const echo = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    await conn.write(encoder.encode(`echo:${decoder.decode(buffer.subarray(0, n ?? 0))}`));
    conn.close();
  })();
  const server = await startStreamingServer({ port: 0, runtime: fakeRuntime([]), log: quiet });
  try {
    const url = server.urlFor({ kind: "portforward", sandboxId: "s", ports: [port] });
    const { session, protocol } = await connectSpdy(url, ["portforward.k8s.io"]);
    assert.equal(protocol, "portforward.k8s.io");
    const headers = (type: string) => ({
      streamtype: [type],
      port: [String(port)],
      requestid: ["0"],
    });
    const error = await session.openStream(headers("error"));
    const errorText = readAll(error);
    const data = await session.openStream(headers("data"));
    const answer = readAll(data);
    await data.write(encoder.encode("ping"));
    assert.equal(await answer, "echo:ping");
    assert.equal(await errorText, "");
    await echo;
    await session.close();
  } finally {
    listener.close();
    await server.close();
  }
});

Deno.test("jsonObjects() splits the resize stream's concatenated objects", () => {
  const split = jsonObjects();
  assert.deepEqual(split('{"Width":80,"Hei'), []);
  assert.deepEqual(split('ght":24}{"Width":100,"Height":30}'), [
    { Width: 80, Height: 24 },
    { Width: 100, Height: 30 },
  ]);
});
