import assert from "node:assert/strict";
import type { ContainerdEvent, ContainerRecord } from "./containerd.ts";
import { isAlreadyExists, isNotFound, kindOf } from "./errors.ts";
import { fromGrpcError, GrpcCode, grpcCodeOf } from "./grpc_errors.ts";
import { waitFor, withTempContainerd } from "./testing.ts";

const SNAPSHOTTER = "overlayfs";
const LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

Deno.test("version() answers with containerd's version", async () => {
  await using ctd = await withTempContainerd();
  const { version, revision } = await ctd.client.version();
  assert(version.startsWith("1.6"), version);
  assert(revision !== "");
});

Deno.test("namespaces.ensure() creates a namespace and succeeds when it exists", async () => {
  await using ctd = await withTempContainerd();
  await ctd.client.namespaces.ensure("pouch-test");
  await ctd.client.namespaces.ensure("pouch-test");
});

Deno.test("content: write, info, read, readAll, update, list, delete", async () => {
  await using ctd = await withTempContainerd();
  const { content } = ctd.client;
  const data = new TextEncoder().encode("hello, content store\n");
  const digest = await sha256(data);
  const { id: lease } = await ctd.client.leases.create();
  await content.write("small", data, {
    expected: digest,
    size: data.length,
    lease,
    labels: { "pouch.test": "small" },
  });

  const info = await content.info(digest);
  assert.deepEqual(info.digest, digest);
  assert.deepEqual(info.size, data.length);
  assert.deepEqual(info.labels["pouch.test"], "small");
  assert(info.createdAt instanceof Date);
  assert.deepEqual(await content.readAll(digest), data);
  const tail: Uint8Array[] = [];
  for await (const chunk of content.read(digest, { offset: 7 })) tail.push(chunk);
  assert.deepEqual(new TextDecoder().decode(concat(tail)), "content store\n");

  const updated = await content.update({ ...info, labels: { "pouch.test": "updated" } });
  assert.deepEqual(updated.labels, { "pouch.test": "updated" });
  assert((await content.list()).some((blob) => blob.digest === digest));

  await content.delete(digest);
  assert(isNotFound(await content.info(digest).catch((err) => err)));
});

Deno.test("content.write() sends a 3 MiB stream in chunks and accepts an existing blob", async () => {
  await using ctd = await withTempContainerd();
  const { content } = ctd.client;
  const data = new Uint8Array(3 * 1024 * 1024 + 123);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
  const digest = await sha256(data);
  async function* pieces() {
    // Uneven pieces, small and large, so that the client has to gather and re-cut them into
    // requests of 1 MiB.
    const sizes = [1, 65_536, 700_000, 3, 1_500_000];
    for (let start = 0, i = 0; start < data.length; i++) {
      const end = Math.min(start + sizes[i % sizes.length]!, data.length);
      yield data.subarray(start, end);
      start = end;
    }
  }
  // Under a lease, so that containerd's garbage collector keeps the unreferenced blob.
  const { id: lease } = await ctd.client.leases.create();
  await content.write("big", pieces(), { expected: digest, size: data.length, lease });
  assert.deepEqual((await content.info(digest)).size, data.length);
  assert.deepEqual(await content.readAll(digest), data);
  const chunks: number[] = [];
  for await (const chunk of content.read(digest, { offset: 1024 * 1024, size: 10 })) {
    chunks.push(chunk.length);
  }
  assert.deepEqual(chunks, [10]);

  // The blob exists: a second write resolves without writing.
  await content.write("big-again", data, { expected: digest, size: data.length, lease });
});

Deno.test("content.write() rejects data that does not match the expected digest", async () => {
  await using ctd = await withTempContainerd();
  const data = new TextEncoder().encode("some bytes");
  const wrong = await sha256(new TextEncoder().encode("other bytes"));
  const err = await ctd.client.content.write("wrong", data, { expected: wrong, size: data.length })
    .catch((err) => err);
  assert.equal(kindOf(err), "Conflict");
  assert.match(err.message, /refused to commit/);
});

Deno.test("leases: create (with expiry), create again conflicts, resources, delete", async () => {
  await using ctd = await withTempContainerd();
  const { leases } = ctd.client;
  const { id } = await leases.create({ id: "pull-1", expireSeconds: 3600 });
  assert.deepEqual(id, "pull-1");
  assert(isAlreadyExists(await leases.create({ id: "pull-1" }).catch((err) => err)));
  const generated = await leases.create();
  assert(generated.id !== "");

  // A blob written under the lease survives until the lease is deleted.
  const data = new TextEncoder().encode("leased");
  await ctd.client.content.write("leased", data, {
    expected: await sha256(data),
    size: data.length,
    lease: id,
  });
  const digest = await sha256(data);
  // Held by a second lease too, it outlives the first; taken out of that one, it is collected.
  await leases.addResource(generated.id, { id: digest, type: "content" });
  await leases.delete(id, { sync: true });
  assert.equal((await ctd.client.content.info(digest)).size, data.length);
  await leases.deleteResource(generated.id, { id: digest, type: "content" });
  // A synchronous delete of any lease runs the collector: the lease still lives, the blob not.
  await leases.delete((await leases.create()).id, { sync: true });
  assert(isNotFound(await ctd.client.content.info(digest).catch((err) => err)));
  await leases.delete(generated.id);
  assert(isNotFound(await leases.delete(id).catch((err) => err)));
});

Deno.test("images: create, get, list, update, delete", async () => {
  await using ctd = await withTempContainerd();
  const { images } = ctd.client;
  const target = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"ab".repeat(32)}`,
    size: 1234,
  };
  const created = await images.create({
    name: "docker.io/library/busybox:latest",
    labels: { "pouch.test": "1" },
    target,
  });
  assert.deepEqual(created.target, target);
  assert(created.createdAt instanceof Date);
  assert(isAlreadyExists(await images.create(created).catch((err) => err)));

  const image = await images.get("docker.io/library/busybox:latest");
  assert.deepEqual(image.labels, { "pouch.test": "1" });
  assert.deepEqual(image.target, target);
  assert.deepEqual((await images.list()).map((i) => i.name), ["docker.io/library/busybox:latest"]);
  assert.deepEqual(await images.list([`name==nothing`]), []);

  const updated = await images.update({ ...image, labels: { "pouch.test": "2" } }, ["labels"]);
  assert.deepEqual(updated.labels, { "pouch.test": "2" });

  await images.delete("docker.io/library/busybox:latest", { sync: true });
  assert(isNotFound(await images.get("docker.io/library/busybox:latest").catch((err) => err)));
});

Deno.test("snapshots: prepare, mounts, commit, stat, list, view, usage, remove", async () => {
  await using ctd = await withTempContainerd();
  const { snapshots } = ctd.client;
  // Under a lease, so that containerd's garbage collector keeps the unreferenced snapshots.
  const { id: lease } = await ctd.client.leases.create();
  const mounts = await snapshots.prepare(SNAPSHOTTER, "layer-1-active", {
    labels: { "pouch.test": "1" },
    lease,
  });
  assert.deepEqual(mounts.length, 1);
  assert.deepEqual(await snapshots.mounts(SNAPSHOTTER, "layer-1-active"), mounts);
  const active = await snapshots.stat(SNAPSHOTTER, "layer-1-active");
  assert.deepEqual(active.kind, "active");
  assert.deepEqual(active.labels["pouch.test"], "1");

  // An empty parent gives a bind mount of the snapshot's own directory: write into it.
  const [bind] = mounts;
  assert(bind && bind.type === "bind", JSON.stringify(mounts));
  await Deno.writeTextFile(`${bind.source}/file.txt`, "in the snapshot\n");

  await snapshots.commit(SNAPSHOTTER, "layer-1", { key: "layer-1-active", lease });
  const committed = await snapshots.stat(SNAPSHOTTER, "layer-1");
  assert.deepEqual(committed.kind, "committed");
  assert(isNotFound(await snapshots.stat(SNAPSHOTTER, "layer-1-active").catch((err) => err)));

  const child = await snapshots.prepare(SNAPSHOTTER, "child", { parent: "layer-1", lease });
  assert.deepEqual(child[0]?.type, "overlay");
  const childInfo = await snapshots.stat(SNAPSHOTTER, "child");
  assert.deepEqual(childInfo.parent, "layer-1");
  const view = await snapshots.view(SNAPSHOTTER, "view", { parent: "layer-1", lease });
  assert.deepEqual(await Deno.readTextFile(`${view[0]?.source}/file.txt`), "in the snapshot\n");

  const names = (await snapshots.list(SNAPSHOTTER)).map((info) => info.name).sort();
  assert.deepEqual(names, ["child", "layer-1", "view"]);
  const usage = await snapshots.usage(SNAPSHOTTER, "layer-1");
  assert(usage.size > 0 && usage.inodes > 0, JSON.stringify(usage));

  assert(
    (await snapshots.remove(SNAPSHOTTER, "layer-1").catch((err) => err)) instanceof Error,
    "a parent cannot be removed",
  );
  await snapshots.remove(SNAPSHOTTER, "child");
  await snapshots.remove(SNAPSHOTTER, "view");
  await snapshots.remove(SNAPSHOTTER, "layer-1");
  assert.deepEqual(await snapshots.list(SNAPSHOTTER), []);
});

Deno.test("diff.apply() unpacks a gzip'd tar layer onto a snapshot", async () => {
  await using ctd = await withTempContainerd();
  const { client } = ctd;
  const tar = buildTar([
    { name: "etc/", content: "" },
    { name: "etc/motd", content: "welcome to pouch\n" },
  ]);
  const layer = await gzip(tar);
  const descriptor = {
    mediaType: LAYER_MEDIA_TYPE,
    digest: await sha256(layer),
    size: layer.length,
  };
  const { id: lease } = await client.leases.create({ expireSeconds: 600 });
  await client.content.write("layer", layer, {
    expected: descriptor.digest,
    size: layer.length,
    lease,
  });

  const mounts = await client.snapshots.prepare(SNAPSHOTTER, "unpack", { lease });
  const applied = await client.diff.apply(descriptor, mounts, { lease });
  assert.deepEqual(applied.digest, await sha256(tar));
  assert.deepEqual(applied.size, tar.length);
  assert.deepEqual(applied.mediaType, "application/vnd.oci.image.layer.v1.tar");

  const chainId = applied.digest;
  await client.snapshots.commit(SNAPSHOTTER, chainId, { key: "unpack", lease });
  const view = await client.snapshots.view(SNAPSHOTTER, "check", { parent: chainId, lease });
  assert.deepEqual(await Deno.readTextFile(`${view[0]?.source}/etc/motd`), "welcome to pouch\n");
  await client.snapshots.remove(SNAPSHOTTER, "check");
  await client.leases.delete(lease);
});

Deno.test("containers: create, get, list, update, delete keep the spec and runtime", async () => {
  await using ctd = await withTempContainerd();
  const { containers } = ctd.client;
  const spec = testSpec("/nonexistent", ["/bin/true"]);
  const record: ContainerRecord = {
    id: "web",
    labels: { "pouch.name": "web" },
    image: "docker.io/library/busybox:latest",
    runtime: {
      name: "io.containerd.runc.v2",
      options: { binaryName: "runc", root: "/run/pouch-runc", systemdCgroup: false },
    },
    spec,
    snapshotter: SNAPSHOTTER,
    snapshotKey: "web-rootfs",
    extensions: { "pouch.io/meta": { restartCount: 2 } },
  };
  const created = await containers.create(record);
  assert.deepEqual(created.spec, spec);
  assert.deepEqual(created.runtime, {
    name: "io.containerd.runc.v2",
    options: { binaryName: "runc", root: "/run/pouch-runc" },
  });
  assert(created.createdAt instanceof Date);
  assert(isAlreadyExists(await containers.create(record).catch((err) => err)));

  const got = await containers.get("web");
  assert.deepEqual(got.spec, spec);
  assert.deepEqual(got.labels, { "pouch.name": "web" });
  assert.deepEqual(got.image, "docker.io/library/busybox:latest");
  assert.deepEqual(got.snapshotKey, "web-rootfs");
  assert.deepEqual(got.extensions, { "pouch.io/meta": { restartCount: 2 } });
  assert.deepEqual((await containers.list()).map((c) => c.id), ["web"]);
  assert.deepEqual(await containers.list(['labels."pouch.name"==db']), []);

  const newSpec = { ...spec, hostname: "changed" };
  const updated = await containers.update(
    { ...got, spec: newSpec, labels: { "pouch.name": "web2" } },
    ["spec", "labels"],
  );
  assert.deepEqual(updated.spec, newSpec);
  assert.deepEqual(updated.labels, { "pouch.name": "web2" });
  assert.deepEqual((await containers.get("web")).spec, newSpec);

  await containers.delete("web");
  assert.deepEqual(await containers.list(), []);
});

Deno.test("errors: a missing object rejects with NotFound", async () => {
  await using ctd = await withTempContainerd();
  const err = await ctd.client.containers.get("missing").catch((err) => err);
  assert(isNotFound(err), String(err));
  assert(err.cause !== undefined);
  assert(isNotFound(await ctd.client.tasks.get("missing").catch((err) => err)));
  assert(isNotFound(await ctd.client.images.get("missing").catch((err) => err)));
});

Deno.test("fromGrpcError() maps status codes to kinds and keeps the cause and message", () => {
  const cases: Array<[number, string]> = [
    [GrpcCode.NOT_FOUND, "NotFound"],
    [GrpcCode.ALREADY_EXISTS, "AlreadyExists"],
    [GrpcCode.FAILED_PRECONDITION, "Conflict"],
    [GrpcCode.INVALID_ARGUMENT, "InvalidArgument"],
    [GrpcCode.UNAVAILABLE, "Unavailable"],
    [GrpcCode.UNIMPLEMENTED, "NotImplemented"],
    [GrpcCode.UNKNOWN, "System"],
    [GrpcCode.DEADLINE_EXCEEDED, "System"],
  ];
  for (const [code, kind] of cases) {
    const cause = Object.assign(new Error(`${code} X: container "web" in use`), {
      code,
      details: `container "web" in use`,
    });
    const err = fromGrpcError(cause);
    assert.equal(kindOf(err), kind);
    assert.equal(err.message, `container "web" in use`);
    assert.equal(err.cause, cause);
    if (kind !== "System") assert.equal(grpcCodeOf(err), code);
  }
  assert.equal(kindOf(fromGrpcError(new TypeError("boom"))), "System");
});

Deno.test("tasks: run busybox echo to completion with stdout in a file", async () => {
  await using ctd = await withTempContainerd();
  const { client } = ctd;
  const rootfs = await makeRootfs(ctd.dir);
  await client.containers.create({
    id: "echo",
    runtime: runcIn(ctd.dir),
    spec: testSpec(rootfs, ["/bin/busybox", "sh", "-c", "echo hello from $0"]),
  });
  // The runc shim of containerd 1.6 crashes when stderr is left empty, so both name the same
  // file; each stream opens it at offset 0, so only one stream may write.
  const stdout = `${ctd.dir}/echo.out`;
  const { pid } = await client.tasks.create("echo", {
    rootfs: [],
    stdout: `file://${stdout}`,
    stderr: `file://${stdout}`,
  });
  assert(pid > 0);
  assert.deepEqual((await client.tasks.get("echo")).status, "created");
  const exited = client.tasks.wait("echo");
  await client.tasks.start("echo");
  const exit = await exited;
  assert.deepEqual(exit.exitStatus, 0);
  assert(exit.exitedAt.getTime() > 0);
  const stopped = await client.tasks.get("echo");
  assert.deepEqual(stopped.status, "stopped");
  assert.deepEqual(stopped.stdout, `file://${stdout}`);

  const deleted = await client.tasks.delete("echo");
  assert.deepEqual(deleted.exitStatus, 0);
  await waitFor(async () => (await Deno.readTextFile(stdout)) !== "");
  assert.equal(await Deno.readTextFile(stdout), "hello from sh\n");
  await client.containers.delete("echo");
});

Deno.test("tasks: exec, pids, update, metrics, pause, kill, wait abort, /tasks/exit event", async () => {
  await using ctd = await withTempContainerd();
  const { client } = ctd;
  const rootfs = await makeRootfs(ctd.dir);
  await client.containers.create({
    id: "sleeper",
    runtime: runcIn(ctd.dir),
    spec: testSpec(rootfs, ["/bin/busybox", "sleep", "100"]),
  });

  const subscription = new AbortController();
  const events: ContainerdEvent[] = [];
  let subscriptionError: unknown;
  const collecting = (async () => {
    for await (const event of client.events.subscribe(['topic~="/tasks/"'], subscription.signal)) {
      events.push(event);
    }
  })().catch((err) => subscriptionError = err);

  const { pid } = await client.tasks.create("sleeper", { rootfs: [] });
  await client.tasks.start("sleeper");
  const task = await client.tasks.get("sleeper");
  assert.deepEqual(task.status, "running");
  assert.deepEqual(task.pid, pid);
  assert.deepEqual((await client.tasks.list()).map((t) => t.containerId), ["sleeper"]);
  assert.deepEqual(await client.tasks.pids("sleeper"), [pid]);

  await client.tasks.update("sleeper", { memory: { limit: 64 * 1024 * 1024 } });
  const [metrics] = await client.tasks.metrics(["sleeper"]);
  assert.deepEqual(metrics?.id, "sleeper");
  const memory = (metrics?.data as { memory?: { usage?: { limit?: number } } }).memory;
  assert.equal(memory?.usage?.limit, 64 * 1024 * 1024);

  // An exec process with its own output file.
  const execOut = `${ctd.dir}/exec.out`;
  await client.tasks.exec("sleeper", "exec-1", {
    stdout: `file://${execOut}`,
    stderr: `file://${execOut}`,
    spec: {
      args: ["/bin/busybox", "echo", "exec works"],
      cwd: "/",
      env: ["PATH=/bin"],
      user: { uid: 0, gid: 0 },
    },
  });
  const execExited = client.tasks.wait("sleeper", { execId: "exec-1" });
  await client.tasks.start("sleeper", "exec-1");
  assert.deepEqual((await execExited).exitStatus, 0);
  assert.deepEqual((await client.tasks.delete("sleeper", "exec-1")).exitStatus, 0);
  assert.deepEqual(await Deno.readTextFile(execOut), "exec works\n");

  await client.tasks.pause("sleeper");
  assert.deepEqual((await client.tasks.get("sleeper")).status, "paused");
  await client.tasks.resume("sleeper");
  assert.deepEqual((await client.tasks.get("sleeper")).status, "running");

  // A wait can be abandoned.
  const waitAbort = new AbortController();
  const abandoned = client.tasks.wait("sleeper", { signal: waitAbort.signal });
  waitAbort.abort();
  await assert.rejects(abandoned, { name: "AbortError" });

  const exited = client.tasks.wait("sleeper");
  await client.tasks.kill("sleeper", 9);
  assert.deepEqual((await exited).exitStatus, 137);
  // The exec's exit came first (its `id` is the exec ID); the task's has the container's ID.
  const isTaskExit = (e: ContainerdEvent) => e.topic === "/tasks/exit" && e.event.id === "sleeper";
  await waitFor(() => events.some(isTaskExit));
  assert(events.some((e) => e.topic === "/tasks/exit" && e.event.id === "exec-1"));
  const exit = events.find(isTaskExit);
  assert.deepEqual(exit?.namespace, "default");
  assert.deepEqual(exit?.event.containerId, "sleeper");
  assert.deepEqual(exit?.event.exitStatus, 137);
  assert(exit?.event.exitedAt instanceof Date);
  const topics = events.map((e) => e.topic);
  for (const topic of ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/paused"]) {
    assert(topics.includes(topic), `${topic} in ${topics}`);
  }
  assert.deepEqual(events.find((e) => e.topic === "/tasks/start")?.event.pid, pid);

  await client.tasks.delete("sleeper");
  await client.containers.delete("sleeper");
  subscription.abort();
  await collecting;
  assert.equal(subscriptionError, undefined);
});

// --- helpers --------------------------------------------------------------------------------

/** A minimal OCI runtime spec running `args` in the host directory `root`. */
function testSpec(root: string, args: string[]): Record<string, unknown> {
  const caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"];
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ["PATH=/bin"],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: root, readonly: false },
    hostname: "pouch-test",
    mounts: [
      {
        destination: "/proc",
        type: "proc",
        source: "proc",
        options: ["nosuid", "noexec", "nodev"],
      },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
    ],
    linux: {
      namespaces: ["pid", "ipc", "uts", "mount", "network"].map((type) => ({ type })),
      cgroupsPath: `/pouch-test-${crypto.randomUUID()}`,
    },
  };
}

/**
 * The runc v2 runtime with runc's state under `dir`: runc's default root
 * (`/run/containerd/runc/<namespace>`) is shared by every containerd on the host.
 */
function runcIn(dir: string): ContainerRecord["runtime"] {
  return { name: "io.containerd.runc.v2", options: { root: `${dir}/runc` } };
}

/** A root filesystem with busybox in it, under `dir`. */
async function makeRootfs(dir: string): Promise<string> {
  const rootfs = `${dir}/rootfs`;
  for (const sub of ["bin", "proc", "dev", "tmp"]) {
    await Deno.mkdir(`${rootfs}/${sub}`, { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  return rootfs;
}

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function gzip(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const result = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}

/** A ustar archive of directories (names ending in `/`) and regular files. */
function buildTar(entries: Array<{ name: string; content: string }>): Uint8Array<ArrayBuffer> {
  const blocks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  for (const entry of entries) {
    const isDir = entry.name.endsWith("/");
    const body = encoder.encode(entry.content);
    const header = new Uint8Array(512);
    const put = (offset: number, text: string) => header.set(encoder.encode(text), offset);
    const octal = (value: number, width: number) =>
      value.toString(8).padStart(width - 1, "0") + "\0";
    put(0, entry.name);
    put(100, octal(isDir ? 0o755 : 0o644, 8));
    put(108, octal(0, 8));
    put(116, octal(0, 8));
    put(124, octal(body.length, 12));
    put(136, octal(1_700_000_000, 12));
    put(148, "        ");
    put(156, isDir ? "5" : "0");
    put(257, "ustar\0");
    put(263, "00");
    const checksum = header.reduce((sum, byte) => sum + byte, 0);
    put(148, checksum.toString(8).padStart(6, "0") + "\0 ");
    blocks.push(header, body, new Uint8Array((512 - (body.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return concat(blocks);
}
