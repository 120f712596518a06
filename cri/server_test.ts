import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { conflict, invalidArgument, notFound } from "../engine/errors.ts";
import { GrpcCode } from "../engine/grpc_errors.ts";
import { Logger } from "../engine/log.ts";
import { criDefinitions, GrpcStatusError, RUNTIME_SERVICE, serveGrpc } from "./server.ts";

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
  const definition = criDefinitions()[RUNTIME_SERVICE] as grpc.ServiceDefinition;
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
