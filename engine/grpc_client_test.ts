import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { GrpcChannel, GrpcStatusError } from "./grpc_client.ts";
import { GrpcCode } from "./grpc_errors.ts";

// A grpc-js server (a different implementation than the client's) with raw-bytes methods.
const identity = (value: Uint8Array) => Buffer.from(value);
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const SERVICE = {
  Echo: method("/test.Test/Echo", false, false),
  Fail: method("/test.Test/Fail", false, false),
  Hang: method("/test.Test/Hang", false, false),
  Count: method("/test.Test/Count", false, true),
  Chat: method("/test.Test/Chat", true, true),
};

async function withServer(
  test: (channel: GrpcChannel, seen: { metadata: grpc.Metadata[] }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/grpc.sock`;
  const server = new grpc.Server();
  const seen = { metadata: [] as grpc.Metadata[] };
  const hanging: Array<() => void> = [];
  server.addService(SERVICE as unknown as grpc.ServiceDefinition, {
    Echo(call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) {
      seen.metadata.push(call.metadata);
      done(null, call.request);
    },
    Fail(_call: unknown, done: grpc.sendUnaryData<Buffer>) {
      done({ code: GrpcCode.NOT_FOUND, details: "container x: not found (100% sure)" });
    },
    Hang(call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) {
      hanging.push(() => done(null, Buffer.alloc(0)));
      call.on("cancelled", () => {});
    },
    Count(call: grpc.ServerWritableStream<Buffer, Buffer>) {
      const count = call.request[0]!;
      // A large message first, so that it arrives in several HTTP/2 data frames.
      call.write(Buffer.alloc(200_000, 7));
      for (let i = 0; i < count; i++) call.write(Buffer.from([i]));
      call.end();
    },
    Chat(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
      call.on("data", (message: Buffer) => call.write(Buffer.concat([message, message])));
      call.on("end", () => call.end());
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) reject(err);
      else resolve();
    })
  );
  const channel = new GrpcChannel(socket);
  try {
    await test(channel, seen);
  } finally {
    channel.close();
    for (const release of hanging) release();
    server.forceShutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("GrpcChannel: a unary call carries metadata and returns the message", async () => {
  await withServer(async (channel, seen) => {
    const answer = await channel.unary("/test.Test/Echo", new Uint8Array([1, 2, 3]), {
      metadata: { "containerd-namespace": "pouch" },
    });
    assert.deepEqual([...answer], [1, 2, 3]);
    assert.deepEqual(seen.metadata[0]?.get("containerd-namespace"), ["pouch"]);
    // An empty message is a message too.
    assert.equal((await channel.unary("/test.Test/Echo", new Uint8Array())).length, 0);
  });
});

Deno.test("GrpcChannel: a failed call rejects with the server's code and message", async () => {
  await withServer(async (channel) => {
    const err = await channel.unary("/test.Test/Fail", new Uint8Array()).catch((err) => err);
    assert(err instanceof GrpcStatusError);
    assert.equal(err.code, GrpcCode.NOT_FOUND);
    assert.equal(err.details, "container x: not found (100% sure)");
    const unknown = await channel.unary("/test.Test/Nope", new Uint8Array()).catch((err) => err);
    assert.equal(unknown.code, GrpcCode.UNIMPLEMENTED);
  });
});

Deno.test("GrpcChannel: an aborted call rejects with the signal's reason", async () => {
  await withServer(async (channel) => {
    const abort = new AbortController();
    const call = channel.unary("/test.Test/Hang", new Uint8Array(), { signal: abort.signal });
    const reason = new Error("given up");
    setTimeout(() => abort.abort(reason), 20);
    assert.equal(await call.catch((err) => err), reason);
  });
});

Deno.test("GrpcChannel: a server stream yields every message, split or not", async () => {
  await withServer(async (channel) => {
    const sizes: number[] = [];
    for await (const message of channel.serverStream("/test.Test/Count", new Uint8Array([3]))) {
      sizes.push(message.length === 1 ? message[0]! : message.length);
    }
    assert.deepEqual(sizes, [200_000, 0, 1, 2]);
    // Stopping early cancels the call.
    for await (const _ of channel.serverStream("/test.Test/Count", new Uint8Array([100]))) break;
  });
});

Deno.test("GrpcChannel: a duplex call exchanges messages in lockstep and ends", async () => {
  await withServer(async (channel) => {
    const call = channel.duplex("/test.Test/Chat");
    for (const byte of [1, 2, 3]) {
      await call.send(new Uint8Array([byte]));
      assert.deepEqual([...(await call.next())!], [byte, byte]);
    }
    call.end();
    assert.equal(await call.next(), undefined);
    call.cancel();
  });
});

Deno.test("GrpcChannel: a missing socket is UNAVAILABLE", async () => {
  const channel = new GrpcChannel("/nonexistent/pouch-test.sock");
  try {
    const err = await channel.unary("/test.Test/Echo", new Uint8Array()).catch((err) => err);
    assert(err instanceof GrpcStatusError);
    assert.equal(err.code, GrpcCode.UNAVAILABLE);
  } finally {
    channel.close();
  }
});
