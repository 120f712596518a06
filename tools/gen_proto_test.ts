import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { descriptors } from "../engine/proto/descriptors.ts";
import { descriptors as criDescriptors } from "../cri/proto/descriptors.ts";
import {
  CRI_DESCRIPTORS_PATH,
  CRI_PROTO_DIR,
  DESCRIPTORS_PATH,
  generateDescriptors,
  PROTO_DIR,
} from "./gen_proto.ts";

Deno.test("engine/proto/descriptors.ts matches the .proto files (else run `deno task proto`)", async () => {
  const committed = await Deno.readTextFile(DESCRIPTORS_PATH);
  assert(
    committed === generateDescriptors(),
    "engine/proto/descriptors.ts is stale: run `deno task proto` and commit the result",
  );
});

Deno.test("the embedded descriptors resolve and hold the services and event types pouch uses", () => {
  const root = protobuf.Root.fromJSON(descriptors as protobuf.INamespace);
  root.resolveAll();
  for (
    const service of [
      "containerd.services.version.v1.Version",
      "containerd.services.tasks.v1.Tasks",
      "containerd.services.content.v1.Content",
    ]
  ) {
    assert(root.lookupService(service).methodsArray.length > 0, service);
  }
  const options = root.lookupType("containerd.runc.v1.Options");
  const bytes = options.encode(options.fromObject({ binaryName: "runc" })).finish();
  assert.equal(options.toObject(options.decode(bytes)).binaryName, "runc");
  root.lookupType("containerd.events.TaskExit");
  root.lookupType("google.protobuf.Any");
});

Deno.test("generateDescriptors() reflects a change to a .proto file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-proto-" });
  try {
    for await (const entry of Deno.readDir(PROTO_DIR)) {
      if (entry.name.endsWith(".proto")) {
        await Deno.copyFile(`${PROTO_DIR}${entry.name}`, `${dir}/${entry.name}`);
      }
    }
    await Deno.writeTextFile(
      `${dir}/version.proto`,
      "\nmessage PouchStaleCheck { string field = 1; }\n",
      { append: true },
    );
    const changed = generateDescriptors(`${dir}/`);
    assert.notEqual(changed, generateDescriptors());
    assert(changed.includes('"PouchStaleCheck"'));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cri/proto/descriptors.ts matches the .proto files (else run `deno task proto`)", async () => {
  const committed = await Deno.readTextFile(CRI_DESCRIPTORS_PATH);
  assert(
    committed === generateDescriptors(CRI_PROTO_DIR, { label: "cri/proto" }),
    "cri/proto/descriptors.ts is stale: run `deno task proto` and commit the result",
  );
});

Deno.test("the embedded CRI descriptors hold runtime.v1's two services", () => {
  const root = protobuf.Root.fromJSON(criDescriptors as protobuf.INamespace);
  root.resolveAll();
  const runtime = root.lookupService("runtime.v1.RuntimeService");
  for (const method of ["RunPodSandbox", "CreateContainer", "ExecSync", "Status", "Version"]) {
    assert(runtime.methods[method], method);
  }
  assert(root.lookupService("runtime.v1.ImageService").methods["PullImage"]);
  // Field numbers are the wire contract with kubelet: spot-check a few.
  assert.equal(root.lookupType("runtime.v1.PodSandboxConfig").fields["logDirectory"]?.id, 3);
  assert.equal(root.lookupType("runtime.v1.ContainerConfig").fields["logPath"]?.id, 11);
  assert.equal(root.lookupType("runtime.v1.ExecSyncRequest").fields["timeout"]?.id, 3);
});
