/**
 * ImageManager against a real containerd: load, list, inspect, resolve, import, tag, remove,
 * and the refusal of corrupt archives. Needs root, containerd, umoci and skopeo.
 */

import assert from "node:assert/strict";
import type { Containerd, Mount } from "./containerd.ts";
import { isConflict, isInvalidArgument, isNotFound, messageOf } from "./errors.ts";
import { ImageManager } from "./image.ts";
import { gzip, readTar, type TarInput, tarStream } from "./tar.ts";
import { waitFor, withTempContainerd } from "./testing.ts";

const SNAPSHOTTER = "overlayfs";
const TESTDATA = `${Deno.env.get("TMPDIR") ?? "/tmp"}/pouch-testdata`;

/** Builds (or reuses) the busybox archives; returns their paths. */
async function busyboxArchives(): Promise<{ dockerSave: string; oci: string }> {
  const script = new URL("../testdata/build_busybox.sh", import.meta.url).pathname;
  const out = await new Deno.Command("bash", {
    args: [script, TESTDATA],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`build_busybox.sh failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { dockerSave: `${TESTDATA}/busybox.tar`, oci: `${TESTDATA}/busybox-oci.tar` };
}

async function fileStream(path: string): Promise<ReadableStream<Uint8Array>> {
  return (await Deno.open(path)).readable;
}

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A copy of a tar archive with some entries' bodies replaced (`edit` returns the new body). */
async function rewriteArchive(
  path: string,
  edit: (name: string, body: Uint8Array) => Uint8Array | undefined,
): Promise<Uint8Array> {
  const entries: TarInput[] = [];
  for await (const e of readTar(await fileStream(path))) {
    const body = await bytesOf(e.body);
    const header = { name: e.name, type: e.type, mode: e.mode, linkname: e.linkname };
    entries.push({ header, body: e.type === "file" ? (edit(e.name, body) ?? body) : undefined });
  }
  return await bytesOf(tarStream(entries));
}

/** The directory holding a committed snapshot's files, through a temporary view. */
async function withSnapshotDir<T>(
  client: Containerd,
  chainId: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const key = `test-view-${crypto.randomUUID()}`;
  // Unreferenced snapshots are garbage: a lease keeps the view while the test looks at it.
  const lease = await client.leases.create();
  const mounts: Mount[] = await client.snapshots.view(SNAPSHOTTER, key, {
    parent: chainId,
    lease: lease.id,
  });
  try {
    const mount = mounts[0]!;
    // A view of one layer is a read-only bind mount; of several, an overlay of lowerdirs.
    const dir = mount.type === "bind"
      ? mount.source
      : mount.options.find((o) => o.startsWith("lowerdir="))!.slice(9).split(":")[0]!;
    return await fn(dir);
  } finally {
    await client.snapshots.remove(SNAPSHOTTER, key).catch(() => {});
    await client.leases.delete(lease.id);
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}

Deno.test("ImageManager loads, lists, resolves, imports, tags and removes images", async (t) => {
  const archives = await busyboxArchives();
  await using ctd = await withTempContainerd();
  const client = ctd.client;
  const logs: string[] = [];
  const images = new ImageManager(client, {
    snapshotter: SNAPSHOTTER,
    log: (m) => logs.push(m),
  });

  // The expected image ID is the config digest named in the archive's manifest.json.
  let busyboxId = "";
  for await (const e of readTar(await fileStream(archives.dockerSave))) {
    if (e.name === "manifest.json") {
      const manifest = JSON.parse(new TextDecoder().decode(await bytesOf(e.body)));
      busyboxId = `sha256:${manifest[0].Config.replace(/\.json$/, "")}`;
    }
  }

  await t.step("load() reads a docker-save archive", async () => {
    const progress: Array<{ status?: string }> = [];
    const loaded = await images.load(await fileStream(archives.dockerSave), {
      onLayerProgress: (m) => progress.push(m),
    });
    assert.deepEqual(loaded, ["Loaded image: busybox:latest"]);
    assert.equal(progress[0]?.status, "Loading layer");
    assert.equal(progress.at(-1)?.status, "Load complete");
    const record = await client.images.get("docker.io/library/busybox:latest");
    assert.equal(record.target.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
  });

  await t.step("list() shows the image in Docker's shape", async () => {
    const list = await images.list();
    assert.equal(list.length, 1);
    const image = list[0]!;
    assert.equal(image.Id, busyboxId);
    assert.deepEqual(image.RepoTags, ["busybox:latest"]);
    assert.deepEqual(image.RepoDigests, []);
    assert.equal(image.Containers, -1);
    assert.equal(image.SharedSize, -1);
    assert.ok(image.Size > 1_000_000, `size ${image.Size}`);
  });

  await t.step("inspect() shows config, rootfs and platform", async () => {
    const inspect = await images.inspect("busybox");
    assert.equal(inspect.Id, busyboxId);
    assert.deepEqual(inspect.RepoTags, ["busybox:latest"]);
    assert.deepEqual(inspect.Config.Cmd, ["sh"]);
    assert.ok(
      inspect.Config.Env?.includes(
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      ),
    );
    assert.equal(inspect.Os, "linux");
    assert.equal(inspect.Architecture, "amd64");
    assert.equal(inspect.RootFS.Type, "layers");
    assert.equal(inspect.RootFS.Layers.length, 1);
    assert.equal(inspect.GraphDriver.Name, "overlay2");
    assert.ok(!Number.isNaN(Date.parse(inspect.Created)));
  });

  await t.step(
    "resolve() accepts names, IDs and ID prefixes, and the snapshot holds busybox",
    async () => {
      for (const s of ["busybox", "busybox:latest", "docker.io/library/busybox:latest"]) {
        const resolved = await images.resolve(s);
        assert.equal(resolved.id, busyboxId, s);
        assert.equal(resolved.name, "docker.io/library/busybox:latest");
      }
      for (
        const s of [busyboxId, busyboxId.slice(7), busyboxId.slice(7, 19), busyboxId.slice(7, 8)]
      ) {
        const resolved = await images.resolve(s);
        assert.equal(resolved.id, busyboxId, s);
        assert.equal(resolved.name, busyboxId);
      }
      const resolved = await images.resolve("busybox");
      assert.deepEqual(resolved.repoTags, ["busybox:latest"]);
      assert.equal(resolved.chainId, resolved.config.rootfs.diff_ids[0]);
      const info = await client.snapshots.stat(SNAPSHOTTER, resolved.chainId);
      assert.equal(info.kind, "committed");
      await withSnapshotDir(client, resolved.chainId, async (dir) => {
        assert.ok((await Deno.stat(`${dir}/bin/busybox`)).isFile);
        assert.equal(await Deno.readLink(`${dir}/bin/sh`), "/bin/busybox");
        assert.equal((await Deno.stat(`${dir}/tmp`)).mode! & 0o7777, 0o1777);
      });
      // GC labels tie the blobs and the snapshot to the image.
      const config = await client.content.info(busyboxId);
      assert.equal(config.labels[`containerd.io/gc.ref.snapshot.${SNAPSHOTTER}`], resolved.chainId);
      const manifest = await client.content.info(resolved.manifest.digest);
      assert.equal(manifest.labels["containerd.io/gc.ref.content.config"], busyboxId);
      assert.ok(manifest.labels["containerd.io/gc.ref.content.l.0"]);

      for (const s of ["nosuchimage", "nosuchimage:1", "ffffffffffff", "sha256:ffff"]) {
        const err = await rejection(images.resolve(s));
        assert.ok(isNotFound(err), s);
        assert.equal(messageOf(err), `No such image: ${s}`);
      }
    },
  );

  await t.step("resolve() unpacks layers whose snapshots are gone", async () => {
    const { chainId } = await images.resolve("busybox");
    await client.snapshots.remove(SNAPSHOTTER, chainId);
    await images.resolve("busybox");
    assert.equal((await client.snapshots.stat(SNAPSHOTTER, chainId)).kind, "committed");
  });

  await t.step("load() reads an OCI archive of the same image", async () => {
    const loaded = await images.load(await fileStream(archives.oci));
    assert.deepEqual(loaded, ["Loaded image: busybox:latest"]);
    const record = await client.images.get("docker.io/library/busybox:latest");
    assert.equal(record.target.mediaType, "application/vnd.oci.image.manifest.v1+json");
    const list = await images.list();
    assert.deepEqual(list.map((i) => i.Id), [busyboxId]);
  });

  await t.step("load() reads a gzip-compressed archive", async () => {
    const loaded = await images.load(gzip(await fileStream(archives.dockerSave)));
    assert.deepEqual(loaded, ["Loaded image: busybox:latest"]);
  });

  let importedId = "";
  await t.step("import() makes a one-layer image with changes applied", async () => {
    const rootfs = tarStream([
      { header: { name: "bin", type: "directory" } },
      { header: { name: "hello.txt" }, body: "hello\n" },
      { header: { name: "bin/tool", mode: 0o755 }, body: "#!/bin/sh\necho hi\n" },
    ]);
    importedId = await images.import(rootfs, {
      ref: "imported:1",
      message: "from a test",
      changes: [
        'CMD ["/bin/tool", "--flag"]',
        'ENV A=1 B="two words"',
        "WORKDIR /work",
        "USER app",
        "LABEL org.example=yes",
        "EXPOSE 80 53/udp",
      ],
    });
    assert.match(importedId, /^sha256:[a-f0-9]{64}$/);
    const inspect = await images.inspect("imported:1");
    assert.equal(inspect.Id, importedId);
    assert.deepEqual(inspect.Config.Cmd, ["/bin/tool", "--flag"]);
    assert.deepEqual(inspect.Config.Env, ["A=1", "B=two words"]);
    assert.equal(inspect.Config.WorkingDir, "/work");
    assert.equal(inspect.Config.User, "app");
    assert.deepEqual(inspect.Config.Labels, { "org.example": "yes" });
    assert.deepEqual(inspect.Config.ExposedPorts, { "80/tcp": {}, "53/udp": {} });
    assert.equal(inspect.Comment, "from a test");
    const resolved = await images.resolve(importedId);
    await withSnapshotDir(client, resolved.chainId, async (dir) => {
      assert.equal(await Deno.readTextFile(`${dir}/hello.txt`), "hello\n");
    });
    const list = await images.list({ filters: { label: ["org.example=yes"] } });
    assert.deepEqual(list.map((i) => i.Id), [importedId]);
  });

  await t.step("import() of a gzip tarball without a name makes a dangling image", async () => {
    const id = await images.import(
      gzip(tarStream([{ header: { name: "only.txt" }, body: "x" }])),
    );
    const dangling = await images.list({ filters: { dangling: ["true"] } });
    assert.deepEqual(dangling.map((i) => [i.Id, i.RepoTags]), [[id, ["<none>:<none>"]]]);
    assert.deepEqual((await images.inspect(id)).RepoTags, []);
    assert.deepEqual(await images.remove(id.slice(7, 19)), [{ Deleted: id }]);
    const err = await rejection(images.import(bytesStream(new TextEncoder().encode("not a tar"))));
    assert.ok(isInvalidArgument(err), String(err));
  });

  await t.step("list() filters by reference", async () => {
    const byRef = await images.list({ filters: { reference: ["busy*"] } });
    assert.deepEqual(byRef.map((i) => i.Id), [busyboxId]);
    const tagged = await images.list({ filters: { reference: ["imported:1"] } });
    assert.deepEqual(tagged.map((i) => i.Id), [importedId]);
    const err = await rejection(images.list({ filters: { bogus: ["x"] } }));
    assert.ok(isInvalidArgument(err));
  });

  await t.step("tag() adds names and refuses bad ones", async () => {
    await images.tag("busybox", "foo/bar:v1");
    await images.tag(busyboxId, "busybox:alias");
    const inspect = await images.inspect("foo/bar:v1");
    assert.deepEqual(inspect.RepoTags, ["busybox:alias", "busybox:latest", "foo/bar:v1"]);
    for (const bad of ["Foo:1", "foo:", `busybox@sha256:${"a".repeat(64)}`]) {
      const err = await rejection(images.tag("busybox", bad));
      assert.ok(isInvalidArgument(err), bad);
    }
    const err = await rejection(images.tag("nosuch", "x:1"));
    assert.ok(isNotFound(err));
  });

  await t.step("remove() follows Docker's rules", async () => {
    const short = busyboxId.slice(7, 19);
    let err = await rejection(images.remove(busyboxId));
    assert.ok(isConflict(err));
    assert.equal(
      messageOf(err),
      `conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`,
    );
    assert.deepEqual(await images.remove("foo/bar:v1"), [{ Untagged: "foo/bar:v1" }]);
    assert.deepEqual(await images.remove("busybox:alias"), [{ Untagged: "busybox:alias" }]);

    const container = "0123456789ab".repeat(5) + "cdef";
    const isInUse = (id: string) => id === busyboxId ? container : undefined;
    err = await rejection(images.remove("busybox", { isInUse }));
    assert.ok(isConflict(err));
    assert.equal(
      messageOf(err),
      `conflict: unable to remove repository reference "busybox" (must force) - container 0123456789ab is using its referenced image ${short}`,
    );
    err = await rejection(images.remove(short, { isInUse }));
    assert.ok(isConflict(err));
    assert.equal(
      messageOf(err),
      `conflict: unable to delete ${short} (must be forced) - image is being used by stopped container 0123456789ab`,
    );

    const { chainId } = await images.resolve("busybox");
    assert.deepEqual(await images.remove("busybox", { isInUse, force: true }), [
      { Untagged: "busybox:latest" },
      { Deleted: busyboxId },
    ]);
    err = await rejection(images.resolve("busybox"));
    assert.ok(isNotFound(err));
    // GC reclaims the blobs and the snapshot.
    await waitFor(async () => {
      try {
        await client.content.info(busyboxId);
        return false;
      } catch (e) {
        return isNotFound(e);
      }
    }, { message: "config blob still present" });
    await waitFor(async () => {
      try {
        await client.snapshots.stat(SNAPSHOTTER, chainId);
        return false;
      } catch (e) {
        return isNotFound(e);
      }
    }, { message: "snapshot still present" });

    assert.deepEqual(await images.remove(importedId), [
      { Untagged: "imported:1" },
      { Deleted: importedId },
    ]);
    assert.deepEqual(await images.list(), []);
  });

  await t.step("load() of an untagged docker-save archive prints the ID", async () => {
    const untagged = await rewriteArchive(archives.dockerSave, (name, body) => {
      if (name !== "manifest.json") return undefined;
      const manifest = JSON.parse(new TextDecoder().decode(body));
      manifest[0].RepoTags = null;
      return new TextEncoder().encode(JSON.stringify(manifest));
    });
    assert.deepEqual(await images.load(bytesStream(untagged)), [`Loaded image ID: ${busyboxId}`]);
    assert.deepEqual((await images.list()).map((i) => i.RepoTags), [["<none>:<none>"]]);
    await images.remove(busyboxId);
  });

  await t.step("load() refuses corrupt archives and leaves no image behind", async () => {
    const flipLast = (body: Uint8Array) => {
      const copy = body.slice();
      copy[copy.length - 1] = copy[copy.length - 1]! ^ 0xff;
      return copy;
    };
    const dockerLayerCorrupt = await rewriteArchive(
      archives.dockerSave,
      (name, body) => name.endsWith(".tar") ? flipLast(body) : undefined,
    );
    const ociBlobCorrupt = await rewriteArchive(
      archives.oci,
      (name, body) => name === `blobs/sha256/${busyboxId.slice(7)}` ? flipLast(body) : undefined,
    );
    const ociBadSize = await rewriteArchive(archives.oci, (name, body) => {
      if (name !== "index.json") return undefined;
      const index = JSON.parse(new TextDecoder().decode(body));
      index.manifests[0].size += 1;
      return new TextEncoder().encode(JSON.stringify(index));
    });
    const whole = await Deno.readFile(archives.dockerSave);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ["docker-save layer with a bad digest", dockerLayerCorrupt, /diff ID/],
      ["OCI blob with a bad digest", ociBlobCorrupt, /has digest/],
      ["OCI descriptor with a bad size", ociBadSize, /bytes, its descriptor says/],
      ["truncated tarball", whole.slice(0, Math.floor(whole.length / 2)), /unexpected EOF/],
      ["not a tarball", new TextEncoder().encode("hello world\n".repeat(100)), /invalid tar/],
      ["empty input", new Uint8Array(0), /neither manifest.json nor index.json/],
    ];
    for (const [what, bytes, message] of cases) {
      const err = await rejection(images.load(bytesStream(bytes)));
      assert.ok(isInvalidArgument(err), `${what}: ${err}`);
      assert.match(messageOf(err), message, what);
      assert.deepEqual(await images.list(), [], what);
      assert.deepEqual(await client.images.list(), [], what);
    }
  });
});

Deno.test("ImageManager.watch() keeps the image records and sees other clients' changes", async () => {
  const archives = await busyboxArchives();
  await using ctd = await withTempContainerd();
  const client = ctd.client;
  const images = new ImageManager(client, { snapshotter: SNAPSHOTTER });
  const stop = images.watch();
  try {
    await images.load(await fileStream(archives.dockerSave));
    // Trusted once the subscription has settled: from then on a resolve lists no images.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const first = await images.resolve("busybox");
    let lists = 0;
    const list = client.images.list.bind(client.images);
    client.images.list = (...args) => {
      lists++;
      return list(...args);
    };
    assert.equal((await images.resolve("busybox")).id, first.id);
    assert.equal(lists, 0, "a watched resolve uses the kept records");

    // Our own change is seen at once, before its event arrives.
    await images.tag("busybox", "mine:1");
    assert.equal((await images.resolve("mine:1")).id, first.id);

    // Another client's change is seen through containerd's event.
    await client.images.create({ name: "docker.io/library/other:2", target: first.manifest });
    await waitFor(async () => {
      try {
        return (await images.resolve("other:2")).id === first.id;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    }, { timeoutMs: 5000 });
    await client.images.delete("docker.io/library/other:2", { sync: true });
    await waitFor(
      () => images.resolve("other:2").then(() => false, (err) => isNotFound(err)),
      { timeoutMs: 5000 },
    );
  } finally {
    stop();
  }
});
