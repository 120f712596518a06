import assert from "node:assert/strict";
import { kindOf, notFound } from "./errors.ts";
import type { HostConfig } from "./types.ts";
import {
  attachVolumes,
  checkBindSources,
  createBindSources,
  type MountPoint,
  mountPointsOf,
  planMounts,
  specHostConfig,
  type VolumeAttacher,
  type VolumeCreateRequest,
} from "./volumes.ts";

Deno.test("planMounts() picks -v and --mount volumes and leaves host paths to the spec", () => {
  const plan = planMounts({
    Binds: ["/host:/h", "data:/data:ro", "cache:/c/:nocopy", "bad", "/anon"],
    Mounts: [
      { Type: "bind", Source: "/srv", Target: "/srv" },
      {
        Type: "volume",
        Source: "db",
        Target: "/db",
        ReadOnly: true,
        VolumeOptions: {
          NoCopy: true,
          Labels: { a: "b" },
          DriverConfig: { Name: "tmpfs", Options: { size: "1m" } },
        },
      },
      { Type: "volume", Target: "/scratch" },
    ],
    VolumeDriver: "local",
  });
  assert.deepEqual(plan.binds, []);
  assert.deepEqual(
    plan.volumes.map((v) => [v.origin, v.index, v.name, v.destination, v.readOnly, v.copy]),
    [
      ["binds", 1, "data", "/data", true, true],
      ["binds", 2, "cache", "/c", false, false],
      ["binds", 4, "", "/anon", false, true],
      ["mounts", 1, "db", "/db", true, false],
      ["mounts", 2, "", "/scratch", false, true],
    ],
  );
  // `--volume-driver` is for `-v` volumes; `--mount` names its own.
  assert.equal(plan.volumes[0]!.driver, "local");
  assert.equal(plan.volumes[3]!.driver, "tmpfs");
  assert.deepEqual(plan.volumes[3]!.driverOpts, { size: "1m" });
  assert.deepEqual(plan.volumes[3]!.labels, { a: "b" });
});

Deno.test("planMounts() refuses bad volume names and read-only anonymous volumes", () => {
  const bad: HostConfig[] = [
    { Binds: ["../etc:/x"] },
    { Binds: ["a..b:/x"] },
    { Mounts: [{ Type: "volume", Source: "a/b", Target: "/x" }] },
    { Mounts: [{ Type: "volume", Source: "..", Target: "/x" }] },
    { Mounts: [{ Type: "volume", Target: "/x", ReadOnly: true }] },
    { VolumesFrom: [""] },
    { VolumesFrom: ["web:rshared"] },
  ];
  for (const hostConfig of bad) {
    assert.throws(
      () => planMounts(hostConfig, { mountsOf: () => [] }),
      (err: unknown) => kindOf(err) === "InvalidArgument",
      JSON.stringify(hostConfig),
    );
  }
  assert.throws(
    () => planMounts({ Mounts: [{ Type: "volume", Target: "/x", ReadOnly: true }] }),
    /must not set ReadOnly mode when using anonymous volumes/,
  );
});

const sourceMounts: MountPoint[] = [
  {
    Type: "volume",
    Name: "shared",
    Source: "/v/shared/_data",
    Destination: "/data",
    Driver: "local",
    Mode: "z",
    RW: true,
    Propagation: "",
  },
  {
    Type: "bind",
    Source: "/srv/logs",
    Destination: "/logs",
    Mode: "",
    RW: true,
    Propagation: "rslave",
  },
  {
    Type: "bind",
    Source: "/srv/conf",
    Destination: "/conf",
    Mode: "ro",
    RW: false,
    Propagation: "rprivate",
  },
  { Type: "tmpfs", Source: "", Destination: "/tmp", Mode: "", RW: true, Propagation: "" },
];

Deno.test("planMounts() inherits --volumes-from mounts; the container's own win", () => {
  const asked: string[] = [];
  const mountsOf = (ref: string) => {
    asked.push(ref);
    return sourceMounts;
  };
  const plan = planMounts({ VolumesFrom: ["src"], Binds: ["/mine:/conf"] }, { mountsOf });
  assert.deepEqual(asked, ["src"]);
  assert.deepEqual(plan.volumes.map((v) => [v.origin, v.name, v.destination, v.readOnly]), [
    ["from", "shared", "/data", false],
  ]);
  assert.equal(plan.volumes[0]!.copy, false);
  assert.deepEqual(plan.binds, [{ ...sourceMounts[1], Mode: "" }]);

  // `:ro` makes everything read-only; `:rw` never makes a read-only mount writable.
  const ro = planMounts({ VolumesFrom: ["src:ro"] }, { mountsOf });
  assert.deepEqual(ro.volumes.map((v) => v.readOnly), [true]);
  assert.deepEqual(ro.binds.map((b) => b.RW), [false, false]);
  const rw = planMounts({ VolumesFrom: ["src:rw"] }, { mountsOf });
  assert.deepEqual(rw.binds.map((b) => b.RW), [true, false]);

  const missing = () => {
    throw notFound("No such container: nope");
  };
  assert.throws(
    () => planMounts({ VolumesFrom: ["nope"] }, { mountsOf: missing }),
    (err: unknown) => kindOf(err) === "NotFound",
  );
});

Deno.test("planMounts() gives the image's free VOLUME paths anonymous volumes", () => {
  const plan = planMounts(
    {
      Binds: ["named:/logs"],
      Mounts: [{ Type: "tmpfs", Target: "/cache/" }],
      Tmpfs: { "/tmp": "" },
      VolumesFrom: ["src"],
    },
    {
      imageVolumes: { "/data/": {}, "/logs": {}, "/cache": {}, "/tmp": {}, "/var": {} },
      mountsOf: () => [{ ...sourceMounts[0]!, Destination: "/var" }],
    },
  );
  assert.deepEqual(plan.volumes.map((v) => [v.origin, v.name, v.destination]), [
    ["binds", "named", "/logs"],
    ["from", "shared", "/var"],
    ["image", "", "/data"],
  ]);
  assert.throws(() => planMounts({}, { imageVolumes: { "rel/dir": {} } }), /absolute/);
  assert.throws(() => planMounts({}, { imageVolumes: { "/a/../b": {} } }), /absolute/);
  assert.deepEqual(planMounts({}, { imageVolumes: undefined }).volumes, []);
});

Deno.test("specHostConfig() puts host paths in, in a copy", () => {
  const hostConfig: HostConfig = {
    Binds: ["/host:/h", "data:/data:ro,nocopy", "/anon"],
    Mounts: [{ Type: "volume", Source: "db", Target: "/db" }],
    VolumesFrom: ["src"],
  };
  // The source's /data volume is skipped: this container binds its own there.
  const plan = planMounts(hostConfig, {
    imageVolumes: { "/img": {} },
    mountsOf: () => sourceMounts,
  });
  const spec = specHostConfig(hostConfig, plan, (v) => `/v/${v.name || v.destination.slice(1)}`);
  assert.deepEqual(spec.Binds, [
    "/host:/h",
    "/v/data:/data:ro",
    "/v/anon:/anon",
    "/v/img:/img",
    "/srv/logs:/logs:rw,rslave",
    "/srv/conf:/conf:ro,rprivate",
  ]);
  assert.deepEqual(spec.Mounts, [{ Type: "volume", Source: "/v/db", Target: "/db" }]);
  assert.deepEqual(hostConfig.Binds, ["/host:/h", "data:/data:ro,nocopy", "/anon"]);
  assert.deepEqual(hostConfig.Mounts, [{ Type: "volume", Source: "db", Target: "/db" }]);
});

Deno.test("mountPointsOf() answers Docker's inspect Mounts", () => {
  const hostConfig: HostConfig = {
    Binds: ["/host:/h:ro,rshared", "data:/data"],
    Mounts: [
      { Type: "volume", Target: "/anon", VolumeOptions: { NoCopy: true } },
      { Type: "bind", Source: "/srv", Target: "/srv/", ReadOnly: true },
      { Type: "tmpfs", Target: "/t" },
    ],
  };
  const plan = planMounts(hostConfig);
  const attached = new Map(plan.volumes.map((v) => [v, {
    name: v.name || "a".repeat(64),
    driver: "local",
    source: `/v/${v.name || "anon"}/_data`,
  }]));
  assert.deepEqual(mountPointsOf(hostConfig, plan, attached), [
    {
      Type: "bind",
      Source: "/host",
      Destination: "/h",
      Mode: "ro,rshared",
      RW: false,
      Propagation: "rshared",
    },
    {
      Type: "volume",
      Name: "data",
      Source: "/v/data/_data",
      Destination: "/data",
      Driver: "local",
      Mode: "z",
      RW: true,
      Propagation: "",
    },
    {
      Type: "volume",
      Name: "a".repeat(64),
      Source: "/v/anon/_data",
      Destination: "/anon",
      Driver: "local",
      Mode: "",
      RW: true,
      Propagation: "",
    },
    {
      Type: "bind",
      Source: "/srv",
      Destination: "/srv",
      Mode: "",
      RW: false,
      Propagation: "rprivate",
    },
    { Type: "tmpfs", Source: "", Destination: "/t", Mode: "", RW: true, Propagation: "" },
  ]);
});

/** A volume manager in memory: names, refs and what was asked. */
class FakeVolumes implements VolumeAttacher {
  readonly volumes = new Map<string, { refs: string[]; anonymous: boolean; driver: string }>();
  readonly created: VolumeCreateRequest[] = [];
  readonly dir: string;
  failAttach = "";
  #next = 0;

  usedBy(containerId: string): string[] {
    return [...this.volumes].filter(([, v]) => v.refs.includes(containerId)).map(([name]) => name);
  }

  constructor(dir: string) {
    this.dir = dir;
  }

  async create(request: VolumeCreateRequest, options: { anonymous?: boolean } = {}) {
    const name = request.Name ?? `anon${this.#next++}`;
    const existing = this.volumes.get(name);
    if (existing && request.Driver && existing.driver !== request.Driver) {
      throw new Error(
        `create ${name}: volume name is already in use with driver "${existing.driver}"`,
      );
    }
    if (!existing) {
      this.created.push(request);
      await Deno.mkdir(`${this.dir}/${name}`);
      this.volumes.set(name, {
        refs: [],
        anonymous: options.anonymous === true,
        driver: request.Driver ?? "local",
      });
    }
    return { Name: name };
  }

  async attach(name: string, containerId: string) {
    if (name === this.failAttach) throw new Error("mount failed");
    if (!this.volumes.has(name)) await this.create({ Name: name });
    this.volumes.get(name)!.refs.push(containerId);
    return { name, driver: this.volumes.get(name)!.driver, source: `${this.dir}/${name}` };
  }

  detach(name: string, containerId: string) {
    const volume = this.volumes.get(name);
    if (volume) volume.refs = volume.refs.filter((r) => r !== containerId);
    return Promise.resolve();
  }

  async remove(name: string) {
    if (this.volumes.get(name)?.refs.length) throw new Error("in use");
    this.volumes.delete(name);
    await Deno.remove(`${this.dir}/${name}`, { recursive: true });
  }

  record(name: string) {
    const volume = this.volumes.get(name);
    if (!volume) throw notFound(`get ${name}: no such volume`);
    return { anonymous: volume.anonymous };
  }
}

/** A one-layer rootfs (a bind mount, as the native snapshotter gives) with `/etc/passwd`. */
async function fakeRootfs(dir: string) {
  await Deno.mkdir(`${dir}/layer/etc`, { recursive: true });
  await Deno.writeTextFile(`${dir}/layer/etc/passwd`, "root:x:0:0::/root:/bin/sh\n");
  // An image must never make the daemon copy the host's files.
  await Deno.symlink("/etc", `${dir}/layer/hostetc`);
  return [{ type: "bind", source: `${dir}/layer`, target: "", options: ["rbind"] }];
}

Deno.test("attachVolumes() creates, attaches and fills empty volumes; undo leaves nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rootfs = await fakeRootfs(dir);
    await Deno.mkdir(`${dir}/vols`);
    const volumes = new FakeVolumes(`${dir}/vols`);
    await volumes.create({ Name: "full" });
    await Deno.writeTextFile(`${dir}/vols/full/mine`, "x");
    await volumes.create({ Name: "existing" });
    const hostConfig: HostConfig = {
      Binds: ["new:/etc", "full:/etc2", "existing:/etc3:nocopy"],
      Mounts: [
        {
          Type: "volume",
          Source: "opts",
          Target: "/o",
          VolumeOptions: { DriverConfig: { Name: "tmpfs", Options: { size: "1m" } } },
        },
        { Type: "volume", Target: "/hostetc/x" },
      ],
    };
    const plan = planMounts(hostConfig, { imageVolumes: { "/etc/": {}, "/hostetc": {} } });
    const undo: Array<() => Promise<void> | void> = [];
    const attached = await attachVolumes(volumes, plan, {
      containerId: "c1",
      rootfs,
      scratchDir: `${dir}/scratch`,
      undo,
    });
    assert.equal(attached.size, 6);
    assert.deepEqual(volumes.created.slice(2), [
      { Driver: undefined, DriverOpts: undefined, Labels: undefined, Name: "new" },
      { Driver: "tmpfs", DriverOpts: { size: "1m" }, Labels: {}, Name: "opts" },
      { Driver: undefined, DriverOpts: {}, Labels: {} },
      { Driver: undefined, DriverOpts: undefined, Labels: undefined },
    ]);
    // A new named volume gets the image's content; a non-empty or nocopy one does not.
    assert.equal(await Deno.readTextFile(`${dir}/vols/new/passwd`), "root:x:0:0::/root:/bin/sh\n");
    assert.deepEqual([...Deno.readDirSync(`${dir}/vols/full`)].map((e) => e.name), ["mine"]);
    assert.deepEqual([...Deno.readDirSync(`${dir}/vols/existing`)], []);
    // An absolute symlink is followed inside the image: its /etc, never the host's.
    assert.deepEqual([...Deno.readDirSync(`${dir}/vols/anon1`)].map((e) => e.name), ["passwd"]);
    assert.deepEqual([...Deno.readDirSync(`${dir}/vols/anon0`)], []);
    assert.deepEqual(volumes.volumes.get("existing")!.refs, ["c1"]);

    for (const step of undo.reverse()) await step();
    assert.deepEqual([...volumes.volumes.keys()].sort(), ["existing", "full"]);
    assert.deepEqual(volumes.volumes.get("existing")!.refs, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("attachVolumes() registers the undo of each step before a later one fails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const volumes = new FakeVolumes(dir);
    volumes.failAttach = "second";
    const plan = planMounts({ Binds: ["first:/a", "second:/b"] });
    const undo: Array<() => Promise<void> | void> = [];
    await assert.rejects(
      attachVolumes(volumes, plan, { containerId: "c1", rootfs: [], scratchDir: dir, undo }),
      /mount failed/,
    );
    for (const step of undo.reverse()) await step();
    assert.deepEqual([...volumes.volumes.keys()], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkBindSources() refuses a missing --mount bind source as Docker does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await checkBindSources({ Mounts: [{ Type: "bind", Source: dir, Target: "/x" }] });
    await assert.rejects(
      checkBindSources({ Mounts: [{ Type: "bind", Source: `${dir}/missing`, Target: "/x" }] }),
      (err: unknown) =>
        kindOf(err) === "InvalidArgument" &&
        (err as Error).message ===
          `invalid mount config for type "bind": bind source path does not exist: ${dir}/missing`,
    );
    // `-v` binds are not checked: their sources are created at start.
    await checkBindSources({ Binds: [`${dir}/missing:/x`] });
    await checkBindSources({
      Mounts: [{
        Type: "bind",
        Source: `${dir}/made`,
        Target: "/x",
        BindOptions: { CreateMountpoint: true },
      }],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createBindSources() makes missing -v sources, leaves files alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await createBindSources({
      Binds: [`${dir}/a/b:/x:ro`, `${dir}/file:/f`, "named:/n"],
      Mounts: [
        { Type: "bind", Source: `${dir}/m`, Target: "/m", BindOptions: { CreateMountpoint: true } },
        { Type: "bind", Source: `${dir}/n`, Target: "/n" },
      ],
    });
    assert.ok((await Deno.stat(`${dir}/a/b`)).isDirectory);
    assert.ok((await Deno.stat(`${dir}/file`)).isFile);
    assert.ok((await Deno.stat(`${dir}/m`)).isDirectory);
    await assert.rejects(Deno.stat(`${dir}/n`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("attachVolumes() copies the merged view of every layer, whiteouts applied", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const sub of ["lower1/data", "lower2/data", "upper", "work", "vols"]) {
      await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
    }
    await Deno.writeTextFile(`${dir}/lower1/data/base`, "from the first layer\n");
    await Deno.writeTextFile(`${dir}/lower1/data/gone`, "deleted by the second layer\n");
    await Deno.writeTextFile(`${dir}/lower2/data/top`, "from the second layer\n");
    // An overlay whiteout: a 0/0 character device.
    const mknod = await new Deno.Command("mknod", {
      args: [`${dir}/lower2/data/gone`, "c", "0", "0"],
    })
      .output();
    assert.ok(mknod.success);
    const rootfs = [{
      type: "overlay",
      source: "overlay",
      target: "",
      options: [
        `workdir=${dir}/work`,
        `upperdir=${dir}/upper`,
        `lowerdir=${dir}/lower2:${dir}/lower1`,
      ],
    }];
    const volumes = new FakeVolumes(`${dir}/vols`);
    const undo: Array<() => Promise<void> | void> = [];
    await attachVolumes(volumes, planMounts({ Binds: ["data:/data"] }), {
      containerId: "c1",
      rootfs,
      scratchDir: `${dir}/scratch`,
      undo,
    });
    const names = [...Deno.readDirSync(`${dir}/vols/data`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["base", "top"]);
    // The scratch mount is gone.
    assert.deepEqual([...Deno.readDirSync(`${dir}/scratch`)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
