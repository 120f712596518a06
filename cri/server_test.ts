import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { conflict, invalidArgument, notFound } from "../engine/errors.ts";
import { GrpcCode } from "../engine/grpc_errors.ts";
import { Logger } from "../engine/log.ts";
import { criClientDefinition } from "../testdata/cri_client.ts";
import {
  criServices,
  GrpcStatusError,
  IMAGE_SERVICE,
  RUNTIME_SERVICE,
  serveGrpc,
} from "./server.ts";

const quiet = new Logger("error", () => {});

Deno.test("serveGrpc() answers handlers' results and turns errors into CRI status codes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-cri-grpc-" });
  const path = `${dir}/cri.sock`;
  const server = await serveGrpc({
    [RUNTIME_SERVICE]: {
      Version: () => Promise.resolve({ runtimeName: "pouch", runtimeApiVersion: "v1" }),
      ContainerStatus: (request: { containerId: string }) => {
        if (request.containerId === "nf") throw notFound("container nf not found");
        if (request.containerId === "bad") throw invalidArgument("bad id");
        if (request.containerId === "busy") throw conflict("not ready");
        throw new Error("boom");
      },
      ExecSync: () => Promise.reject(new GrpcStatusError(GrpcCode.DEADLINE_EXCEEDED, "slow")),
    },
  }, { path, log: quiet });
  const definition = criClientDefinition(RUNTIME_SERVICE);
  const Client = grpc.makeGenericClientConstructor(definition, "RuntimeService");
  const client = new Client(`unix://${path}`, grpc.credentials.createInsecure());
  // deno-lint-ignore no-explicit-any
  const call = (method: string, request: object): Promise<any> =>
    new Promise((resolve, reject) =>
      // deno-lint-ignore no-explicit-any
      (client as any)[method](
        request,
        (err: unknown, response: unknown) => err ? reject(err) : resolve(response),
      )
    );
  const codeOf = (promise: Promise<unknown>) =>
    promise.then(() => -1, (err: grpc.ServiceError) => err.code);
  try {
    const version = await call("Version", {});
    assert.equal(version.runtimeName, "pouch");
    assert.equal(version.runtimeApiVersion, "v1");
    assert.equal(await codeOf(call("ContainerStatus", { containerId: "nf" })), 5);
    assert.equal(await codeOf(call("ContainerStatus", { containerId: "bad" })), 3);
    assert.equal(await codeOf(call("ContainerStatus", { containerId: "busy" })), 9);
    assert.equal(await codeOf(call("ContainerStatus", { containerId: "x" })), 2);
    assert.equal(await codeOf(call("ExecSync", {})), 4);
    assert.equal(await codeOf(call("ListContainers", {})), 12);
    // As grpc-go clients dialing a path send it (crictl and the kubelet up to 1.29).
    const pathClient = new Client(`unix://${path}`, grpc.credentials.createInsecure(), {
      "grpc.default_authority": path,
    });
    try {
      const answer = await new Promise<{ runtimeName: string }>((resolve, reject) =>
        // deno-lint-ignore no-explicit-any
        (pathClient as any).Version(
          {},
          (err: unknown, response: { runtimeName: string }) =>
            err ? reject(err) : resolve(response),
        )
      );
      assert.equal(answer.runtimeName, "pouch");
    } finally {
      pathClient.close();
    }
  } finally {
    client.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the server's codec and protobufjs (the tests' clients) agree on CRI messages", () => {
  const samples: Array<[service: string, method: string, side: "request" | "response", unknown]> = [
    [RUNTIME_SERVICE, "RunPodSandbox", "request", {
      config: {
        metadata: { name: "web", uid: "u1", namespace: "default", attempt: 2 },
        hostname: "web-0",
        labels: { app: "web", tier: "front" },
        dnsConfig: { servers: ["10.0.0.10"], searches: ["svc.cluster.local"], options: [] },
        portMappings: [{ protocol: "UDP", containerPort: 53, hostPort: 5353, hostIp: "" }],
        linux: {
          cgroupParent: "/kubepods",
          securityContext: {
            namespaceOptions: { network: "NODE", pid: "CONTAINER", ipc: "POD" },
            runAsUser: { value: 1000 },
            seccomp: { profileType: "RuntimeDefault", localhostRef: "" },
            supplementalGroups: [5, 6],
          },
          sysctls: { "net.ipv4.ip_forward": "1" },
        },
      },
      runtimeHandler: "runc",
    }],
    [RUNTIME_SERVICE, "CreateContainer", "request", {
      podSandboxId: "s".repeat(64),
      config: {
        metadata: { name: "app", attempt: 0 },
        image: { image: "busybox:latest" },
        command: ["sh", "-c"],
        args: ["echo hi"],
        envs: [{ key: "A", value: new TextEncoder().encode("b=c") }],
        mounts: [{ containerPath: "/data", hostPath: "/srv", propagation: "PROPAGATION_PRIVATE" }],
        linux: { resources: { cpuShares: 512, memoryLimitInBytes: 1 << 30, oomScoreAdj: -5 } },
      },
    }],
    [RUNTIME_SERVICE, "ContainerStatus", "response", {
      status: {
        id: "c".repeat(64),
        metadata: { name: "app", attempt: 1 },
        state: "CONTAINER_EXITED",
        // Nanoseconds since 1970: beyond 2^53, as the kubelet sends and reads them.
        createdAt: 1_795_000_000_123_456_789,
        startedAt: 1_795_000_001_000_000_000,
        finishedAt: 0,
        exitCode: -1,
        image: { image: "busybox:latest" },
        labels: { a: "b" },
        mounts: [],
      },
      info: { info: "{}" },
    }],
    [RUNTIME_SERVICE, "ExecSync", "response", {
      stdout: new Uint8Array([0, 1, 2, 255]),
      stderr: new Uint8Array(),
      exitCode: 3,
    }],
    [IMAGE_SERVICE, "ListImages", "response", {
      images: [{ id: "sha256:x", repoTags: ["busybox:latest"], repoDigests: [], size: 2_050_000 }],
    }],
  ];
  const server = criServices();
  for (const [service, method, side, value] of samples) {
    const ours = server[service]![method]!;
    const theirs = criClientDefinition(service)[method]!;
    const [encodeOurs, decodeOurs, encodeTheirs, decodeTheirs] = side === "request"
      ? [
        ours.requestSerialize,
        ours.requestDeserialize,
        theirs.requestSerialize,
        theirs.requestDeserialize,
      ]
      : [
        ours.responseSerialize,
        ours.responseDeserialize,
        theirs.responseSerialize,
        theirs.responseDeserialize,
      ];
    const plain = (x: unknown) => JSON.parse(JSON.stringify(x, (_, v) => bytesAsArray(v)));
    // Ours out, protobufjs in; protobufjs out, ours in: the same message both ways.
    const theirsRead = decodeTheirs(encodeOurs(value as object));
    const oursRead = decodeOurs(encodeTheirs(value as object));
    assert.deepEqual(plain(oursRead), plain(theirsRead), `${method} ${side}`);
    assert.deepEqual(plain(decodeOurs(encodeOurs(value as object))), plain(oursRead));
  }
});

/** Buffers and Uint8Arrays as plain arrays, so that the two decoders' bytes compare. */
function bytesAsArray(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (value && typeof value === "object" && (value as { type?: string }).type === "Buffer") {
    return (value as { data: number[] }).data;
  }
  return value;
}
