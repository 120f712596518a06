import assert from "node:assert/strict";
import { isInvalidArgument } from "./errors.ts";
import { checkLayerEntry, extractTar, overlayChanges, resolveInRoot } from "./archive.ts";
import { type TarInput, tarStream } from "./tar.ts";

async function tempTree(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "pouch-archive-" });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("resolveInRoot() keeps .. and symlinks inside the root", async () => {
  await using tree = await tempTree();
  const root = `${tree.dir}/root`;
  await Deno.mkdir(`${root}/etc`, { recursive: true });
  await Deno.mkdir(`${root}/a/b`, { recursive: true });
  await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0\n");
  await Deno.symlink("/", `${root}/toroot`);
  await Deno.symlink("../../../..", `${root}/a/b/up`);
  await Deno.symlink("/etc", `${root}/a/etclink`);
  await Deno.symlink("b", `${root}/a/rel`);

  assert.equal((await resolveInRoot(root, "/../../etc/passwd")).hostPath, `${root}/etc/passwd`);
  assert.equal((await resolveInRoot(root, "/toroot/etc/passwd")).hostPath, `${root}/etc/passwd`);
  const up = await resolveInRoot(root, "/a/b/up/etc/passwd");
  assert.equal(up.hostPath, `${root}/etc/passwd`);
  assert.equal(up.escaped, true);
  assert.equal((await resolveInRoot(root, "/a/etclink/passwd")).hostPath, `${root}/etc/passwd`);
  assert.equal((await resolveInRoot(root, "/a/rel")).hostPath, `${root}/a/b`);
  assert.equal(
    (await resolveInRoot(root, "/a/rel", { followFinal: false })).hostPath,
    `${root}/a/rel`,
  );
  assert.equal((await resolveInRoot(root, "/a/missing/x")).hostPath, `${root}/a/missing/x`);
  assert.equal((await resolveInRoot(root, "/")).hostPath, root);
});

Deno.test("resolveInRoot() stops at symlink loops", async () => {
  await using tree = await tempTree();
  await Deno.symlink("loop", `${tree.dir}/loop`);
  await assert.rejects(() => resolveInRoot(tree.dir, "/loop/x"), isInvalidArgument);
});

function entries(list: TarInput[]): ReadableStream<Uint8Array> {
  return tarStream(list);
}

Deno.test("extractTar() writes files, modes and symlinks inside the destination", async () => {
  await using tree = await tempTree();
  await Deno.mkdir(`${tree.dir}/root/dst`, { recursive: true });
  await extractTar(
    entries([
      { header: { name: "d", type: "directory", mode: 0o750 } },
      { header: { name: "d/run.sh", mode: 0o755 }, body: "#!/bin/sh\n" },
      { header: { name: "d/link", type: "symlink", linkname: "run.sh" } },
      { header: { name: "d/abs", type: "symlink", linkname: "/etc/passwd" } },
    ]),
    { root: `${tree.dir}/root`, dest: "/dst" },
  );
  const dst = `${tree.dir}/root/dst`;
  assert.equal((await Deno.stat(`${dst}/d`)).mode! & 0o777, 0o750);
  assert.equal((await Deno.stat(`${dst}/d/run.sh`)).mode! & 0o777, 0o755);
  assert.equal(await Deno.readLink(`${dst}/d/link`), "run.sh");
  assert.equal(await Deno.readTextFile(`${dst}/d/link`), "#!/bin/sh\n");
});

Deno.test("extractTar() refuses .., absolute names and escaping symlinks", async () => {
  await using tree = await tempTree();
  const root = `${tree.dir}/root`;
  await Deno.mkdir(`${root}/dst`, { recursive: true });
  await Deno.symlink("../../..", `${root}/dst/evil`);
  const bad: TarInput[][] = [
    [{ header: { name: "../x" }, body: "x" }],
    [{ header: { name: "a/../../x" }, body: "x" }],
    [{ header: { name: "/x" }, body: "x" }],
    [{ header: { name: "l", type: "symlink", linkname: "../../x" } }],
    [{ header: { name: "evil/x" }, body: "x" }],
  ];
  for (const list of bad) {
    await assert.rejects(
      () => extractTar(entries(list), { root, dest: "/dst" }),
      isInvalidArgument,
      list[0]!.header.name,
    );
  }
  for await (const entry of Deno.readDir(tree.dir)) assert.equal(entry.name, "root");
  assert.deepEqual([...Deno.readDirSync(`${root}/dst`)].map((e) => e.name), ["evil"]);
});

Deno.test("extractTar() replaces a symlink instead of writing through it", async () => {
  await using tree = await tempTree();
  const root = `${tree.dir}/root`;
  await Deno.mkdir(`${root}/dst`, { recursive: true });
  await Deno.writeTextFile(`${tree.dir}/outside`, "keep");
  await Deno.symlink(`${tree.dir}/outside`, `${root}/dst/f`);
  await extractTar(entries([{ header: { name: "f" }, body: "new" }]), { root, dest: "/dst" });
  assert.equal(await Deno.readTextFile(`${tree.dir}/outside`), "keep");
  assert.equal(await Deno.readTextFile(`${root}/dst/f`), "new");
});

Deno.test("overlayChanges() classifies added, modified and deleted paths", async () => {
  await using tree = await tempTree();
  const lower = `${tree.dir}/lower`;
  const upper = `${tree.dir}/upper`;
  await Deno.mkdir(`${lower}/etc`, { recursive: true });
  await Deno.writeTextFile(`${lower}/etc/passwd`, "x");
  await Deno.writeTextFile(`${lower}/etc/gone`, "x");
  await Deno.mkdir(`${upper}/etc`, { recursive: true });
  await Deno.mkdir(`${upper}/new`, { recursive: true });
  await Deno.writeTextFile(`${upper}/new/file`, "x");
  await Deno.writeTextFile(`${upper}/etc/passwd`, "y");
  const mknod = await new Deno.Command("mknod", { args: [`${upper}/etc/gone`, "c", "0", "0"] })
    .output();
  assert.ok(mknod.success);
  assert.deepEqual(await overlayChanges(upper, [lower]), [
    { Path: "/etc", Kind: 0 },
    { Path: "/etc/gone", Kind: 2 },
    { Path: "/etc/passwd", Kind: 0 },
    { Path: "/new", Kind: 1 },
    { Path: "/new/file", Kind: 1 },
  ]);
});

Deno.test("checkLayerEntry() refuses layer entries that climb out, as Docker's UnpackLayer", () => {
  const ok = (name: string, type = "file", linkname = "") =>
    checkLayerEntry({ name, type, linkname });
  ok("etc/passwd");
  ok("a/../b");
  ok("usr/bin/sh", "symlink", "../../bin/busybox");
  ok("bin/sh", "symlink", "/bin/busybox");
  ok("bin/ln", "hardlink", "bin/busybox");
  for (
    const [name, type, linkname] of [
      ["../escape", "file", ""],
      ["a/../../escape", "file", ""],
      ["/../escape", "file", ""],
      ["/etc/passwd", "file", ""],
      ["hard", "hardlink", "../../etc/passwd"],
      ["link", "symlink", "../../outside"],
      ["a/b/link", "symlink", "../../../outside"],
    ]
  ) {
    assert.throws(() => ok(name!, type, linkname), (err: unknown) => isInvalidArgument(err), name);
  }
});
