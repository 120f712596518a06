import assert from "node:assert/strict";
import { isInvalidArgument, messageOf } from "./errors.ts";
import {
  ALL_CAPABILITIES,
  buildSpec,
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  type OciMount,
  type OciSpec,
  parseCapabilityMask,
  type SpecInput,
  validateHostConfig,
} from "./spec.ts";
import type { ContainerConfig, HostConfig, ImageRunConfig } from "./types.ts";

const ID = "0123456789abcdef".repeat(4);
const MiB = 1024 * 1024;

/** A spec input for `busybox`-like defaults, with the given parts replaced. */
function inputOf(parts: {
  config?: ContainerConfig;
  hostConfig?: HostConfig;
  image?: ImageRunConfig;
  extra?: Partial<SpecInput>;
} = {}): SpecInput {
  return {
    id: ID,
    config: { Cmd: ["sh"], ...parts.config },
    hostConfig: parts.hostConfig ?? {},
    image: parts.image ?? {},
    user: { uid: 0, gid: 0, additionalGids: [0, 10] },
    files: {
      hosts: `/var/lib/pouch/containers/${ID}/hosts`,
      hostname: `/var/lib/pouch/containers/${ID}/hostname`,
      resolvConf: `/var/lib/pouch/containers/${ID}/resolv.conf`,
    },
    cgroupsPath: `/pouch/${ID}`,
    hostHostname: "buildhost",
    // The golden files hold the seccomp rules of this architecture and kernel, whatever the host.
    host: { arch: "amd64", kernel: "6.1.0" },
    ...parts.extra,
  };
}

function build(parts: Parameters<typeof inputOf>[0] = {}): OciSpec {
  return buildSpec(inputOf(parts), { cpuCount: 4 });
}

function mountAt(spec: OciSpec, destination: string): OciMount | undefined {
  return spec.mounts.find((m) => m.destination === destination);
}

/** Asserts `fn` throws an InvalidArgument error whose message is `message`. */
function assertInvalid(fn: () => unknown, message: string, label = message): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isInvalidArgument(err), `${label}: not InvalidArgument: ${messageOf(err)}`);
    assert.equal(messageOf(err), message, label);
    return true;
  });
}

// --- golden files ----------------------------------------------------------------------------

async function assertGolden(name: string, spec: OciSpec): Promise<void> {
  const path = new URL(`../testdata/spec/${name}.json`, import.meta.url);
  const text = JSON.stringify(spec, null, 2) + "\n";
  if (Deno.env.get("UPDATE_GOLDEN") === "1") {
    await Deno.mkdir(new URL(".", path), { recursive: true });
    await Deno.writeTextFile(path, text);
    return;
  }
  assert.equal(text, await Deno.readTextFile(path), `${name}.json differs; UPDATE_GOLDEN=1`);
}

Deno.test("buildSpec() matches the golden default spec", async () => {
  const spec = build({
    image: {
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Cmd: ["sh"],
    },
    config: { Cmd: null },
  });
  await assertGolden("default", spec);
});

Deno.test("buildSpec() matches the golden limits + privileged spec", async () => {
  const warnings: string[] = [];
  const spec = build({
    config: { Cmd: ["top"], Tty: true, Hostname: "web", Domainname: "example.org", User: "app" },
    hostConfig: {
      Privileged: true,
      ReadonlyRootfs: true,
      Memory: 256 * MiB,
      MemoryReservation: 128 * MiB,
      MemorySwappiness: 10,
      NanoCpus: 1_500_000_000,
      CpuShares: 512,
      CpusetCpus: "0-1",
      PidsLimit: 100,
      BlkioWeight: 300,
      ShmSize: 128 * MiB,
      OomScoreAdj: -500,
      Ulimits: [{ Name: "nofile", Soft: 1024, Hard: 65536 }, { Name: "core", Soft: 0, Hard: 0 }],
      Binds: ["/srv/data:/data:ro"],
      Tmpfs: { "/run": "size=64m" },
      Sysctls: { "net.core.somaxconn": "1024" },
      SecurityOpt: ["no-new-privileges"],
    },
    extra: {
      user: { uid: 1000, gid: 1000, additionalGids: [1000, 10] },
      netnsPath: "/var/run/netns/pouch-0123",
      limits: {
        maxOomScoreAdj: 0,
        nofileHard: 20000,
        nprocHard: 96364,
        capabilities: parseCapabilityMask("000001fffeffffff"), // this host: no CAP_SYS_RESOURCE
      },
      hostDevices: [{ path: "/dev/sda", type: "b", major: 8, minor: 0, fileMode: 0o660 }],
      warn: (msg) => warnings.push(msg),
    },
  });
  await assertGolden("limits_privileged", spec);
  assert.equal(warnings.length, 2);
});

// --- process ---------------------------------------------------------------------------------

Deno.test("buildSpec() merges Entrypoint and Cmd as Docker does", () => {
  const image: ImageRunConfig = { Entrypoint: ["/entry"], Cmd: ["image-cmd"] };
  const cases: Array<{ name: string; config: ContainerConfig; want: string[] }> = [
    { name: "image only", config: {}, want: ["/entry", "image-cmd"] },
    { name: "cmd overrides image cmd", config: { Cmd: ["run"] }, want: ["/entry", "run"] },
    { name: "entrypoint drops image cmd", config: { Entrypoint: ["/bin/sh"] }, want: ["/bin/sh"] },
    {
      name: "entrypoint and cmd",
      config: { Entrypoint: ["/bin/sh"], Cmd: ["-c", "x"] },
      want: ["/bin/sh", "-c", "x"],
    },
    { name: "--entrypoint '' with cmd", config: { Entrypoint: [""], Cmd: ["ls"] }, want: ["ls"] },
    { name: "[] entrypoint keeps image cmd", config: { Entrypoint: [] }, want: ["image-cmd"] },
    {
      name: "null entrypoint, empty cmd",
      config: { Entrypoint: null, Cmd: [] },
      want: ["/entry", "image-cmd"],
    },
  ];
  for (const { name, config, want } of cases) {
    assert.deepEqual(build({ config: { Cmd: null, ...config }, image }).process.args, want, name);
  }
  assertInvalid(
    () => build({ config: { Entrypoint: [""], Cmd: null }, image }),
    "No command specified",
  );
  assertInvalid(() => build({ config: { Cmd: null } }), "No command specified");
});

Deno.test("buildSpec() merges the environment as Docker does", () => {
  const cases: Array<
    { name: string; config: ContainerConfig; image: ImageRunConfig; want: string[] }
  > = [
    {
      name: "defaults",
      config: {},
      image: {},
      want: [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=0123456789ab",
      ],
    },
    {
      name: "image PATH replaces default, container overrides image by key",
      config: { Env: ["FOO=container", "NEW=1"], Hostname: "h", Tty: true },
      image: { Env: ["PATH=/bin", "FOO=image", "KEEP=yes"] },
      want: ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "FOO=container", "NEW=1", "KEEP=yes"],
    },
    {
      name: "a bare name unsets a default; the container may set TERM",
      config: { Env: ["HOSTNAME", "TERM=dumb"], Tty: true },
      image: {},
      want: [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=dumb",
      ],
    },
  ];
  for (const { name, config, image, want } of cases) {
    assert.deepEqual(build({ config: { Cmd: ["sh"], ...config }, image }).process.env, want, name);
  }
});

Deno.test("buildSpec() sets cwd, terminal, user and hostname", () => {
  const spec = build({
    config: { Cmd: ["sh"], WorkingDir: "/app", Tty: true },
    image: { WorkingDir: "/image" },
    extra: { user: { uid: 1000, gid: 100, additionalGids: [100, 27] } },
  });
  assert.equal(spec.process.cwd, "/app");
  assert.equal(spec.process.terminal, true);
  assert.deepEqual(spec.process.user, { uid: 1000, gid: 100, additionalGids: [100, 27] });
  assert.equal(spec.hostname, "0123456789ab");
  assert.equal(build({ image: { WorkingDir: "/image" } }).process.cwd, "/image");
  assert.equal(build().process.cwd, "/");
  assertInvalid(
    () => build({ config: { Cmd: ["sh"], WorkingDir: "app" } }),
    "the working directory 'app' is invalid, it needs to be an absolute path",
  );
});

// --- capabilities ----------------------------------------------------------------------------

Deno.test("buildSpec() tweaks capabilities like Docker", () => {
  const defaults = [...DEFAULT_CAPABILITIES];
  const cases: Array<{ name: string; hostConfig: HostConfig; want: string[] }> = [
    { name: "defaults", hostConfig: {}, want: defaults },
    {
      name: "add without prefix, any case",
      hostConfig: { CapAdd: ["net_admin", "CAP_SYS_TIME"] },
      want: [...defaults, "CAP_NET_ADMIN", "CAP_SYS_TIME"],
    },
    {
      name: "drop",
      hostConfig: { CapDrop: ["MKNOD", "cap_net_raw"] },
      want: defaults.filter((c) => c !== "CAP_MKNOD" && c !== "CAP_NET_RAW"),
    },
    {
      name: "drop ALL, add one",
      hostConfig: { CapDrop: ["ALL"], CapAdd: ["chown"] },
      want: ["CAP_CHOWN"],
    },
    {
      name: "add ALL, drop one",
      hostConfig: { CapAdd: ["all"], CapDrop: ["SYS_ADMIN"] },
      want: ALL_CAPABILITIES.filter((c) => c !== "CAP_SYS_ADMIN"),
    },
    {
      name: "privileged",
      hostConfig: { Privileged: true, CapDrop: ["ALL"] },
      want: [...ALL_CAPABILITIES],
    },
  ];
  for (const { name, hostConfig, want } of cases) {
    const caps = build({ hostConfig }).process.capabilities;
    assert.deepEqual(caps, { bounding: want, effective: want, permitted: want }, name);
  }
  assertInvalid(() => build({ hostConfig: { CapAdd: ["FOO"] } }), 'unknown capability: "CAP_FOO"');
  assertInvalid(
    () => build({ hostConfig: { CapDrop: ["cap_bar"] } }),
    'unknown capability: "CAP_BAR"',
  );
});

Deno.test("parseCapabilityMask() reads /proc/self/status masks", () => {
  assert.deepEqual(parseCapabilityMask("00000000a80425fb"), [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
  ]);
  const host = parseCapabilityMask("000001fffeffffff\n");
  assert.equal(host.length, ALL_CAPABILITIES.length - 1);
  assert.ok(!host.includes("CAP_SYS_RESOURCE"));
  assert.deepEqual(parseCapabilityMask("0"), []);
});

Deno.test("buildSpec() grants only the daemon's capabilities to ALL and --privileged", () => {
  const capabilities = parseCapabilityMask("000001fffeffffff");
  for (const hostConfig of [{ Privileged: true }, { CapAdd: ["ALL"] }]) {
    const spec = build({ hostConfig, extra: { limits: { capabilities } } });
    assert.deepEqual(spec.process.capabilities.bounding, capabilities, JSON.stringify(hostConfig));
  }
  assertInvalid(
    () => build({ hostConfig: { CapAdd: ["SYS_RESOURCE"] }, extra: { limits: { capabilities } } }),
    "capability CAP_SYS_RESOURCE is not available: the daemon does not have it",
  );
});

Deno.test("buildSpec() gives a non-root user only the bounding set", () => {
  const spec = build({ extra: { user: { uid: 1000, gid: 1000, additionalGids: [1000] } } });
  assert.deepEqual(spec.process.capabilities, { bounding: [...DEFAULT_CAPABILITIES] });
});

Deno.test("buildSpec() reads --security-opt", () => {
  assert.equal(build().process.noNewPrivileges, undefined);
  for (const opt of ["no-new-privileges", "no-new-privileges=true", "no-new-privileges:1"]) {
    assert.equal(build({ hostConfig: { SecurityOpt: [opt] } }).process.noNewPrivileges, true, opt);
  }
  const unconfined = build({ hostConfig: { SecurityOpt: ["systempaths=unconfined"] } });
  assert.deepEqual([unconfined.linux.maskedPaths, unconfined.linux.readonlyPaths], [[], []]);
  assertInvalid(
    () => build({ hostConfig: { SecurityOpt: ["no-new-privileges=maybe"] } }),
    'invalid --security-opt 2: "no-new-privileges=maybe"',
  );
  assertInvalid(
    () => build({ hostConfig: { SecurityOpt: ["bogus"] } }),
    'invalid --security-opt 1: "bogus"',
  );
});

// --- privileged and read-only ----------------------------------------------------------------

Deno.test("buildSpec() keeps an unprivileged container confined", () => {
  const spec = build();
  assert.deepEqual(mountAt(spec, "/sys")?.options, ["nosuid", "noexec", "nodev", "ro"]);
  assert.ok(mountAt(spec, "/sys/fs/cgroup")?.options.includes("ro"));
  assert.deepEqual(spec.linux.maskedPaths, DEFAULT_MASKED_PATHS);
  assert.equal(spec.linux.resources.devices[0]?.allow, false);
  assert.deepEqual(spec.linux.devices, []);
});

Deno.test("buildSpec() opens up a privileged container", () => {
  const spec = build({ hostConfig: { Privileged: true } });
  assert.ok(!mountAt(spec, "/sys")?.options.includes("ro"));
  assert.ok(!mountAt(spec, "/sys/fs/cgroup")?.options.includes("ro"));
  assert.deepEqual([spec.linux.maskedPaths, spec.linux.readonlyPaths], [[], []]);
  assert.deepEqual(spec.linux.resources.devices, [{ allow: true, access: "rwm" }]);
});

Deno.test("buildSpec() makes the rootfs and network files read-only with --read-only", () => {
  const spec = build({ hostConfig: { ReadonlyRootfs: true, Binds: ["/srv:/srv"] } });
  assert.deepEqual(spec.root, { path: "rootfs", readonly: true });
  assert.deepEqual(mountAt(spec, "/etc/hosts")?.options, ["rbind", "ro", "rprivate"]);
  assert.deepEqual(mountAt(spec, "/srv")?.options, ["rbind", "rprivate"]);
  assert.ok(!mountAt(spec, "/dev/shm")?.options.includes("ro"));
  assert.deepEqual(build().root, { path: "rootfs", readonly: false });
});

Deno.test("buildSpec() applies MaskedPaths and ReadonlyPaths overrides", () => {
  const spec = build({ hostConfig: { MaskedPaths: ["/proc/kcore"], ReadonlyPaths: [] } });
  assert.deepEqual(spec.linux.maskedPaths, ["/proc/kcore"]);
  assert.deepEqual(spec.linux.readonlyPaths, []);
});

// --- resources -------------------------------------------------------------------------------

Deno.test("buildSpec() computes memory, swap and CPU limits as Docker does", () => {
  const cases: Array<{ name: string; hostConfig: HostConfig; want: unknown }> = [
    { name: "no limits", hostConfig: {}, want: [undefined, undefined, undefined] },
    {
      name: "memory gets twice as much memory+swap",
      hostConfig: { Memory: 64 * MiB },
      want: [{ limit: 64 * MiB, swap: 128 * MiB }, undefined, undefined],
    },
    {
      name: "explicit swap, swappiness, reservation",
      hostConfig: {
        Memory: 64 * MiB,
        MemorySwap: 96 * MiB,
        MemorySwappiness: 0,
        MemoryReservation: 32 * MiB,
      },
      want: [
        { limit: 64 * MiB, reservation: 32 * MiB, swap: 96 * MiB, swappiness: 0 },
        undefined,
        undefined,
      ],
    },
    {
      name: "-1 swap is unlimited, -1 swappiness is the host's",
      hostConfig: { Memory: 64 * MiB, MemorySwap: -1, MemorySwappiness: -1 },
      want: [{ limit: 64 * MiB }, undefined, undefined],
    },
    {
      name: "--cpus 1.5",
      hostConfig: { NanoCpus: 1_500_000_000 },
      want: [undefined, { period: 100000, quota: 150000 }, undefined],
    },
    {
      name: "--cpus 0.01",
      hostConfig: { NanoCpus: 10_000_000 },
      want: [undefined, { period: 100000, quota: 1000 }, undefined],
    },
    {
      name: "quota, period, shares, cpuset, pids",
      hostConfig: {
        CpuQuota: 50000,
        CpuPeriod: 200000,
        CpuShares: 256,
        CpusetCpus: "0,2-3",
        CpusetMems: "0",
        PidsLimit: 64,
      },
      want: [
        undefined,
        { shares: 256, period: 200000, quota: 50000, cpus: "0,2-3", mems: "0" },
        { limit: 64 },
      ],
    },
    {
      name: "pids -1 is unlimited",
      hostConfig: { PidsLimit: -1 },
      want: [undefined, undefined, undefined],
    },
  ];
  for (const { name, hostConfig, want } of cases) {
    const r = build({ hostConfig }).linux.resources;
    assert.deepEqual([r.memory, r.cpu, r.pids], want, name);
  }
});

Deno.test("validateHostConfig() refuses bad resources with Docker's messages", () => {
  const cases: Array<[HostConfig, string]> = [
    [{ Memory: 4 * MiB }, "Minimum memory limit allowed is 6MB"],
    [{ Memory: -1 }, "Minimum memory limit allowed is 6MB"],
    [
      { Memory: 64 * MiB, MemorySwap: 32 * MiB },
      "Minimum memoryswap limit should be larger than memory limit, see usage",
    ],
    [
      { MemorySwap: 64 * MiB },
      "You should always set the Memory limit when using Memoryswap limit, see usage",
    ],
    [{ MemorySwappiness: 101 }, "Invalid value: 101, valid memory swappiness range is 0-100"],
    [{ MemoryReservation: MiB }, "Minimum memory reservation allowed is 6MB"],
    [
      { Memory: 64 * MiB, MemoryReservation: 128 * MiB },
      "Minimum memory limit can not be less than memory reservation limit, see usage",
    ],
    [
      { NanoCpus: 5e9 },
      "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available",
    ],
    [
      { NanoCpus: -1 },
      "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available",
    ],
    [
      { NanoCpus: 1e9, CpuQuota: 50000 },
      "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
    ],
    [
      { NanoCpus: 1e9, CpuPeriod: 50000 },
      "Conflicting options: Nano CPUs and CPU Period cannot both be set",
    ],
    [{ CpuShares: -2 }, "shares: invalid argument"],
    [
      { CpuPeriod: 999 },
      "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
    ],
    [{ CpuQuota: 999 }, "CPU cfs quota can not be less than 1ms (i.e. 1000)"],
    [{ CpusetCpus: "0-a" }, "Invalid value 0-a for cpuset cpus: invalid format: 0-a"],
    [{ CpusetCpus: "3-1" }, "Invalid value 3-1 for cpuset cpus: invalid format: 3-1"],
    [
      { CpusetCpus: "0,7" },
      "Requested CPUs are not available - requested 0,7, available: 0-3",
    ],
    [{ CpusetMems: "x" }, "Invalid value x for cpuset mems: invalid format: x"],
    [{ PidsLimit: -5 }, "Invalid PIDs limit -5: use -1 or 0 for unlimited"],
    [{ BlkioWeight: 5 }, "Range of blkio weight is from 10 to 1000"],
    [{ ShmSize: -1 }, "SHM size can not be less than 0"],
    [{ OomScoreAdj: -1001 }, "Invalid value -1001, range for oom score adj is [-1000, 1000]"],
    [{ IpcMode: "bogus" }, "invalid IPC mode: bogus"],
    [{ PidMode: "bogus" }, "invalid PID mode: bogus"],
    [{ UTSMode: "bogus" }, "invalid UTS mode: bogus"],
    [{ CgroupnsMode: "bogus" }, "invalid cgroup namespace mode: bogus"],
    [{ Ulimits: [{ Name: "files", Soft: 1, Hard: 1 }] }, "invalid ulimit type: files"],
    [
      { Ulimits: [{ Name: "nofile", Soft: 10, Hard: 5 }] },
      "ulimit soft limit must be less than or equal to hard limit: 10 > 5",
    ],
    [{ DeviceCgroupRules: ["x 1:2 rwm"] }, "invalid device cgroup rule format: 'x 1:2 rwm'"],
    [
      { NetworkMode: "host", Sysctls: { "net.core.somaxconn": "1" } },
      `sysctl "net.core.somaxconn" is not allowed in the host's network namespace`,
    ],
  ];
  for (const [hostConfig, message] of cases) {
    assertInvalid(
      () => validateHostConfig(hostConfig, { cpuCount: 4 }),
      message,
      JSON.stringify(hostConfig),
    );
  }
  validateHostConfig({ Memory: 6 * MiB, NanoCpus: 4e9, CpusetCpus: "0-3" }, { cpuCount: 4 });
});

// --- rlimits and oom score -------------------------------------------------------------------

Deno.test("buildSpec() clamps ulimits to the daemon's hard limits and warns", () => {
  const warnings: string[] = [];
  const spec = build({
    hostConfig: {
      Ulimits: [
        { Name: "nofile", Soft: 100000, Hard: 100000 },
        { Name: "nproc", Soft: 512, Hard: 1024 },
      ],
    },
    extra: { limits: { nofileHard: 20000, nprocHard: 96364 }, warn: (m) => warnings.push(m) },
  });
  assert.deepEqual(spec.process.rlimits, [
    { type: "RLIMIT_NOFILE", hard: 20000, soft: 20000 },
    { type: "RLIMIT_NPROC", hard: 1024, soft: 512 },
  ]);
  assert.deepEqual(warnings, [
    "ulimit nofile hard limit 100000 is above the daemon's hard limit 20000: lowered to 20000",
  ]);

  const unlimited = build({
    hostConfig: { Ulimits: [{ Name: "nofile", Soft: -1, Hard: -1 }] },
    extra: { limits: { nofileHard: 20000 } },
  });
  assert.deepEqual(unlimited.process.rlimits, [{
    type: "RLIMIT_NOFILE",
    hard: 20000,
    soft: 20000,
  }]);
  assert.equal(build().process.rlimits, undefined);
  assertInvalid(
    () => build({ hostConfig: { Ulimits: [{ Name: "core", Soft: -1, Hard: -1 }] } }),
    "unlimited (-1) is not supported for ulimit core",
  );
});

Deno.test("buildSpec() keeps oomScoreAdj at or above the daemon's own", () => {
  const cases: Array<{ requested?: number; floor?: number; want?: number; warned: boolean }> = [
    { requested: undefined, floor: 0, want: undefined, warned: false },
    { requested: 0, floor: 0, want: undefined, warned: false },
    { requested: 500, floor: 0, want: 500, warned: false },
    { requested: -500, floor: 0, want: 0, warned: true },
    { requested: -500, floor: -900, want: -500, warned: false },
    { requested: -500, floor: undefined, want: -500, warned: false },
  ];
  for (const { requested, floor, want, warned } of cases) {
    const warnings: string[] = [];
    const spec = build({
      hostConfig: { OomScoreAdj: requested },
      extra: { limits: { maxOomScoreAdj: floor }, warn: (m) => warnings.push(m) },
    });
    assert.equal(spec.process.oomScoreAdj, want, `${requested} with floor ${floor}`);
    assert.equal(warnings.length > 0, warned, `${requested} with floor ${floor}`);
  }
});

// --- namespaces ------------------------------------------------------------------------------

Deno.test("buildSpec() chooses namespaces from the modes", () => {
  const types = (spec: OciSpec) =>
    spec.linux.namespaces.map((ns) => ns.path ? `${ns.type}=${ns.path}` : ns.type);
  assert.deepEqual(types(build()), ["mount", "network", "uts", "pid", "ipc"]);
  assert.deepEqual(
    types(build({ extra: { netnsPath: "/var/run/netns/x" } })),
    ["mount", "network=/var/run/netns/x", "uts", "pid", "ipc"],
  );
  assert.deepEqual(
    types(
      build({
        hostConfig: { PidMode: "host", IpcMode: "host", UTSMode: "host", CgroupnsMode: "private" },
      }),
    ),
    ["mount", "network", "cgroup"],
  );
});

Deno.test("buildSpec() joins another container's IPC, PID and UTS namespaces by path", () => {
  const spec = build({
    hostConfig: { IpcMode: "container:pod", PidMode: "container:pod", UTSMode: "container:pod" },
    extra: {
      namespacePaths: { ipc: "/proc/7/ns/ipc", pid: "/proc/7/ns/pid", uts: "/proc/7/ns/uts" },
    },
  });
  assert.deepEqual(
    spec.linux.namespaces.map((ns) => ns.path ? `${ns.type}=${ns.path}` : ns.type),
    ["mount", "network", "uts=/proc/7/ns/uts", "pid=/proc/7/ns/pid", "ipc=/proc/7/ns/ipc"],
  );
  // The joined UTS namespace keeps its owner's hostname.
  assert.equal(spec.hostname, undefined);
  assertInvalid(
    () => build({ hostConfig: { IpcMode: "container:pod" } }),
    "container:pod: the ipc namespace to join is unknown",
  );
});

Deno.test("buildSpec() with --network host shares the host's network and hostname", () => {
  const spec = build({ hostConfig: { NetworkMode: "host" }, extra: { netnsPath: "" } });
  assert.ok(!spec.linux.namespaces.some((ns) => ns.type === "network"));
  assert.equal(spec.hostname, "buildhost");
  assert.ok(spec.process.env.includes("HOSTNAME=buildhost"));
  assert.deepEqual(spec.linux.sysctl, {});
  const named = build({
    config: { Cmd: ["sh"], Hostname: "mine" },
    hostConfig: { NetworkMode: "host" },
  });
  assert.equal(named.hostname, "mine");
  const uts = build({ hostConfig: { UTSMode: "host" } });
  assert.equal(uts.hostname, undefined);
});

Deno.test("buildSpec() sets Docker's default sysctls and the user's", () => {
  const spec = build({
    config: { Cmd: ["sh"], Domainname: "example.org" },
    hostConfig: {
      Sysctls: { "net.ipv4.ip_unprivileged_port_start": "1024", "kernel.msgmax": "1" },
    },
  });
  assert.deepEqual(spec.linux.sysctl, {
    "kernel.domainname": "example.org",
    "net.ipv4.ping_group_range": "0 2147483647",
    "net.ipv4.ip_unprivileged_port_start": "1024",
    "kernel.msgmax": "1",
  });
});

// --- mounts ----------------------------------------------------------------------------------

Deno.test("buildSpec() mounts binds, --mount and tmpfs, parents first", () => {
  const spec = build({
    hostConfig: {
      Binds: ["/srv/a/b:/data/sub:ro,rslave", "/srv/a:/data", "/srv//x/:/x:Z"],
      Mounts: [
        { Type: "bind", Source: "/opt", Target: "/opt", ReadOnly: true },
        // The container manager has put the volume's host path in Source.
        { Type: "volume", Source: "/v/data/_data", Target: "/vol/" },
        { Type: "tmpfs", Target: "/cache", TmpfsOptions: { SizeBytes: 64 * MiB, Mode: 0o1777 } },
      ],
      Tmpfs: { "/run": "exec,size=10m", "/dev/shm": "size=1g" },
      ShmSize: 128 * MiB,
    },
  });
  // The defaults come first, without /dev/shm which a tmpfs replaces; then the user's mounts.
  const user = spec.mounts.slice(6);
  assert.deepEqual(spec.mounts.slice(0, 6).map((m) => m.destination), [
    "/proc",
    "/dev",
    "/dev/pts",
    "/sys",
    "/sys/fs/cgroup",
    "/dev/mqueue",
  ]);
  assert.deepEqual(user, [
    { destination: "/data", type: "bind", source: "/srv/a", options: ["rbind", "rprivate"] },
    { destination: "/x", type: "bind", source: "/srv/x", options: ["rbind", "rprivate"] },
    { destination: "/opt", type: "bind", source: "/opt", options: ["rbind", "ro", "rprivate"] },
    { destination: "/vol", type: "bind", source: "/v/data/_data", options: ["rbind", "rprivate"] },
    {
      destination: "/cache",
      type: "tmpfs",
      source: "tmpfs",
      options: ["noexec", "nosuid", "nodev", "rprivate", "size=64m", "mode=1777"],
    },
    {
      destination: "/run",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "nodev", "rprivate", "exec", "size=10m"],
    },
    {
      destination: "/data/sub",
      type: "bind",
      source: "/srv/a/b",
      options: ["rbind", "ro", "rslave"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "tmpfs",
      options: ["noexec", "nosuid", "nodev", "rprivate", "size=1g"],
    },
    {
      destination: "/etc/resolv.conf",
      type: "bind",
      source: `/var/lib/pouch/containers/${ID}/resolv.conf`,
      options: ["rbind", "rprivate"],
    },
    {
      destination: "/etc/hostname",
      type: "bind",
      source: `/var/lib/pouch/containers/${ID}/hostname`,
      options: ["rbind", "rprivate"],
    },
    {
      destination: "/etc/hosts",
      type: "bind",
      source: `/var/lib/pouch/containers/${ID}/hosts`,
      options: ["rbind", "rprivate"],
    },
  ]);
  assert.equal(spec.linux.rootfsPropagation, "rslave");
});

Deno.test("buildSpec() sizes /dev/shm and follows the IPC mode", () => {
  assert.deepEqual(mountAt(build(), "/dev/shm")?.options, [
    "nosuid",
    "noexec",
    "nodev",
    "mode=1777",
    "size=67108864",
  ]);
  assert.ok(
    mountAt(build({ hostConfig: { ShmSize: MiB } }), "/dev/shm")?.options.includes("size=1048576"),
  );
  assert.equal(mountAt(build({ hostConfig: { IpcMode: "none" } }), "/dev/shm"), undefined);
  assert.deepEqual(mountAt(build({ hostConfig: { IpcMode: "host" } }), "/dev/shm"), {
    destination: "/dev/shm",
    type: "bind",
    source: "/dev/shm",
    options: ["rbind", "rprivate"],
  });
});

Deno.test("buildSpec() refuses bad binds and mounts", () => {
  const cases: Array<[HostConfig, string]> = [
    [
      { Binds: ["data:/data"] },
      "invalid volume specification: 'data:/data': named volumes are not supported yet, only absolute host paths can be bind-mounted",
    ],
    [
      { Binds: ["/data"] },
      "invalid volume specification: '/data': anonymous volumes are not supported yet",
    ],
    [{ Binds: ["/a:/b:ro:x"] }, "invalid volume specification: '/a:/b:ro:x'"],
    [
      { Binds: ["/a:b"] },
      `invalid volume specification: '/a:b': invalid mount config for type "bind": invalid mount path: 'b' mount path must be absolute`,
    ],
    [
      { Binds: ["/a:/"] },
      `invalid volume specification: '/a:/': invalid mount config for type "bind": invalid specification: destination can't be '/'`,
    ],
    [{ Binds: ["/a:/b:ro,rw"] }, "invalid mode: ro,rw"],
    [{ Binds: ["/a:/b:fast"] }, "invalid mode: fast"],
    [{ Binds: ["/a:/b", "/c:/b/"] }, "Duplicate mount point: /b"],
    [
      { Mounts: [{ Type: "bind", Source: "rel", Target: "/b" }] },
      `invalid mount config for type "bind": invalid mount path: 'rel' mount path must be absolute`,
    ],
    [
      { Mounts: [{ Type: "volume", Source: "v", Target: "/b" }] },
      `invalid mount config for type "volume": volume "v" has no host path: volumes are attached before the spec is built`,
    ],
    [
      { Mounts: [{ Type: "volume", Source: "/v", Target: "/b", BindOptions: {} }] },
      `invalid mount config for type "volume": field BindOptions must not be specified`,
    ],
    [
      { Mounts: [{ Type: "tmpfs", Target: "/b", VolumeOptions: { NoCopy: true } }] },
      `invalid mount config for type "tmpfs": field VolumeOptions must not be specified`,
    ],
    [
      { Mounts: [{ Type: "npipe", Target: "/b" }] },
      `invalid mount config for type "npipe": mount type unknown`,
    ],
    [{ Tmpfs: { "/t": "size=1m,bogus" } }, `invalid tmpfs option "bogus"`],
  ];
  for (const [hostConfig, message] of cases) {
    assertInvalid(() => build({ hostConfig }), message, JSON.stringify(hostConfig));
  }
});

// --- devices ---------------------------------------------------------------------------------

Deno.test("buildSpec() appends --device-cgroup-rule rules to Docker's defaults", () => {
  const spec = build({ hostConfig: { DeviceCgroupRules: ["c 10:200 rwm", "b *:* m", "a"] } });
  assert.deepEqual(spec.linux.resources.devices.slice(-3), [
    { allow: true, type: "c", major: 10, minor: 200, access: "rwm" },
    { allow: true, type: "b", access: "m" },
    { allow: true, type: "a", access: "rwm" },
  ]);
  assert.equal(spec.linux.resources.devices.length, 11);
});

Deno.test("buildSpec() copies its input instead of sharing arrays", () => {
  const input = inputOf({ hostConfig: { MaskedPaths: ["/proc/kcore"] } });
  const spec = buildSpec(input, { cpuCount: 4 });
  spec.linux.maskedPaths.push("/x");
  spec.process.user.additionalGids?.push(99);
  assert.deepEqual(input.hostConfig.MaskedPaths, ["/proc/kcore"]);
  assert.deepEqual(input.user.additionalGids, [0, 10]);
});
