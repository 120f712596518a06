import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { ProtoSchema } from "./protobuf.ts";
import { descriptors } from "./proto/descriptors.ts";

// protobufjs is the reference: what it encodes we must decode the same way proto-loader shaped
// it, and what we encode it must read back as the same message.
const reference = protobuf.Root.fromJSON(descriptors as protobuf.INamespace);
reference.resolveAll();
const schema = new ProtoSchema(descriptors);
const CONVERSION = { longs: Number, enums: String, defaults: true } as const;

function referenceEncode(typeName: string, value: Record<string, unknown>): Uint8Array {
  const type = reference.lookupType(typeName);
  return type.encode(type.fromObject(value)).finish();
}

function referenceDecode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const type = reference.lookupType(typeName);
  return normalise(type.toObject(type.decode(bytes), CONVERSION)) as Record<string, unknown>;
}

/** protobufjs decodes bytes as Buffers; compare them as plain Uint8Arrays. */
function normalise(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]));
  }
  return value;
}

const SAMPLES: Array<[string, Record<string, unknown>]> = [
  ["containerd.services.containers.v1.CreateContainerRequest", {
    container: {
      id: "c1",
      labels: { "io.pouch.name": "web", "ünïcode": "välue" },
      image: "busybox:latest",
      runtime: {
        name: "io.containerd.runc.v2",
        options: { type_url: "containerd.runc.v1.Options", value: new Uint8Array([10, 1, 65]) },
      },
      spec: { type_url: "types.containerd.io/x", value: new TextEncoder().encode("{}") },
      snapshotter: "overlayfs",
      snapshotKey: "c1",
      createdAt: { seconds: 1_700_000_000, nanos: 123 },
      extensions: { a: { type_url: "types.pouch.io/json", value: new Uint8Array([1, 2]) } },
    },
  }],
  ["containerd.services.tasks.v1.CreateTaskRequest", {
    containerId: "c1",
    rootfs: [
      { type: "overlay", source: "overlay", target: "", options: ["lowerdir=/a", "upperdir=/b"] },
      { type: "bind", source: "/x", options: [] },
    ],
    stdout: "/run/fifo",
    terminal: true,
  }],
  ["containerd.services.content.v1.WriteContentRequest", {
    action: "COMMIT",
    ref: "layer-1",
    total: 5_000_000_000,
    offset: 4_294_967_297,
    expected: "sha256:abc",
    data: new Uint8Array(70_000).fill(7),
    labels: { "containerd.io/gc.root": "x" },
  }],
  ["containerd.services.events.v1.Envelope", {
    timestamp: { seconds: 1, nanos: 999_999_999 },
    namespace: "pouch",
    topic: "/tasks/exit",
    event: { type_url: "containerd.events.TaskExit", value: new Uint8Array([8, 1]) },
  }],
  ["containerd.events.TaskExit", {
    containerId: "c1",
    id: "c1",
    pid: 4_294_967_295,
    exitStatus: 137,
    exitedAt: { seconds: 2, nanos: 0 },
  }],
  ["io.containerd.cgroups.v1.Metrics", {
    pids: { current: 3, limit: 0 },
    cpu: { usage: { total: 123_456_789_012, kernel: 1, user: 2, perCpu: [1, 2, 3_000_000_000] } },
    memory: { cache: 1, usage: { usage: 4096, limit: 9_223_372_036_854_771_712 } },
    hugetlb: [{ usage: 1, max: 2, failcnt: 0, pagesize: "2MB" }],
  }],
  ["containerd.services.snapshots.v1.Info", { name: "s", kind: "COMMITTED", labels: {} }],
  ["containerd.runc.v1.Options", { binaryName: "crun", root: "/run/r", systemdCgroup: true }],
];

Deno.test("ProtoSchema decodes what protobufjs encodes, as proto-loader shapes it", () => {
  for (const [typeName, value] of SAMPLES) {
    const bytes = referenceEncode(typeName, value);
    assert.deepEqual(schema.decode(typeName, bytes), referenceDecode(typeName, bytes), typeName);
  }
});

Deno.test("ProtoSchema encodes what protobufjs decodes back to the same message", () => {
  for (const [typeName, value] of SAMPLES) {
    const bytes = schema.encode(typeName, value);
    assert.deepEqual(referenceDecode(typeName, bytes), schema.decode(typeName, bytes), typeName);
    assert.deepEqual(
      referenceDecode(typeName, bytes),
      referenceDecode(typeName, referenceEncode(typeName, value)),
      typeName,
    );
  }
});

Deno.test("ProtoSchema writes bytes given in pieces as one value, after the headroom asked", () => {
  const typeName = "containerd.services.content.v1.WriteContentRequest";
  const data = new Uint8Array(300_000).map((_, i) => i % 251);
  const pieces = [data.subarray(0, 1), data.subarray(1, 65_537), data.subarray(65_537)];
  const request = { action: "WRITE", ref: "r", offset: 7 };
  const whole = schema.encode(typeName, { ...request, data });
  const framed = schema.encode(typeName, { ...request, data: pieces }, { headroom: 5 });
  assert.deepEqual(framed.subarray(0, 5), new Uint8Array(5));
  assert.deepEqual(framed.subarray(5), whole);
  assert.deepEqual(referenceDecode(typeName, whole).data, data);
});

Deno.test("ProtoSchema leaves out proto3 zero values and fills them in when decoding", () => {
  const typeName = "containerd.events.TaskExit";
  assert.equal(schema.encode(typeName, { containerId: "", pid: 0, exitedAt: null }).length, 0);
  assert.deepEqual(schema.decode(typeName, new Uint8Array()), {
    containerId: "",
    id: "",
    pid: 0,
    exitStatus: 0,
    exitedAt: null,
  });
  const info = schema.decode("containerd.services.snapshots.v1.Info", new Uint8Array());
  assert.equal(info.kind, "UNKNOWN");
  assert.deepEqual(info.labels, {});
});

Deno.test("ProtoSchema reads negative int64 and int32 values and skips unknown fields", () => {
  // int64 -1 as a ten-byte varint, then an unknown field 15 (varint) that must be skipped.
  const typeName = "containerd.services.tasks.v1.ListPidsRequest";
  assert.ok(schema.has(typeName));
  const negative = schema.decode(
    "containerd.services.content.v1.ReadContentRequest",
    Uint8Array.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x78, 5]),
  );
  assert.equal(negative.offset, -1);
  const roundTrip = schema.encode("containerd.services.content.v1.ReadContentRequest", {
    offset: -5,
  });
  assert.equal(
    referenceDecode("containerd.services.content.v1.ReadContentRequest", roundTrip)
      .offset,
    -5,
  );
});

Deno.test("ProtoSchema rejects truncated messages and unknown types", () => {
  const bytes = schema.encode("containerd.events.TaskExit", { containerId: "abcdef" });
  assert.throws(() => schema.decode("containerd.events.TaskExit", bytes.subarray(0, 4)), /trunc/);
  assert.throws(() => schema.encode("no.such.Type", {}), /unknown message/);
});

Deno.test("ProtoSchema.method() resolves a service's paths and message types", () => {
  const method = schema.method("containerd.services.content.v1.Content", "Write");
  assert.deepEqual(method, {
    path: "/containerd.services.content.v1.Content/Write",
    requestType: "containerd.services.content.v1.WriteContentRequest",
    responseType: "containerd.services.content.v1.WriteContentResponse",
    requestStream: true,
    responseStream: true,
  });
  assert.equal(
    schema.method("containerd.services.tasks.v1.Tasks", "Kill")?.responseType,
    "google.protobuf.Empty",
  );
  assert.equal(schema.method("containerd.services.tasks.v1.Tasks", "Nope"), undefined);
});
