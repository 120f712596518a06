import assert from "node:assert/strict";
import { isInvalidArgument, kindOf, messageOf } from "./errors.ts";
import {
  APP_STDERR_IN_CONTAINER,
  APP_STDOUT_IN_CONTAINER,
  APP_UNIT_DIR_IN_CONTAINER,
  appUnit,
  awaitInitStep,
  DOCKER_INIT_IN_CONTAINER,
  dockerInitSpecOpt,
  findImageInit,
  hooksSpecOpt,
  type ImageInit,
  INIT_IN_CONTAINER,
  INIT_LAUNCHER,
  INIT_OUTPUT_FILE,
  INIT_STATUS_FILE,
  INIT_STEP_WRAPPER,
  parseHook,
  quoteExecWord,
  quoteUnitString,
  resetInitStep,
  richSpecOpts,
  RUN_DIR_IN_CONTAINER,
  validateHooks,
  validateRich,
} from "./rich.ts";
import { buildSpec, type OciSpec, type SpecInput } from "./spec.ts";
import type { ContainerConfig, HostConfig } from "./types.ts";

const ID = "0123456789abcdef".repeat(4);
const RUN_DIR = `/var/lib/pouch/containers/${ID}/rich`;

function inputOf(config: ContainerConfig, hostConfig: HostConfig = {}): SpecInput {
  return {
    id: ID,
    config: { Cmd: ["sleep", "100"], ...config },
    hostConfig,
    image: {},
    user: { uid: 0, gid: 0, additionalGids: [] },
    files: { hosts: "/h", hostname: "/hn", resolvConf: "/r" },
    cgroupsPath: `/pouch/${ID}`,
    hostHostname: "buildhost",
  };
}

const SYSTEMD: ImageInit = {
  path: "/lib/systemd/systemd",
  resolved: "/usr/lib/systemd/systemd",
  systemd: true,
  commandIsInit: false,
};
const BUSYBOX_INIT: ImageInit = {
  path: "/sbin/init",
  resolved: "/bin/busybox",
  systemd: false,
  commandIsInit: false,
};

function build(
  config: ContainerConfig,
  hostConfig: HostConfig = {},
  options: { imageInit?: ImageInit; units?: string[]; cgroupV2?: boolean } = {},
): OciSpec {
  return buildSpec(inputOf(config, hostConfig), {
    cpuCount: 4,
    extraOpts: [
      ...richSpecOpts({
        staticInit: "/usr/bin/tini-static",
        runDir: RUN_DIR,
        imageInit: options.imageInit,
        appUnitDir: "/host/units",
        onAppUnit: (unit) => options.units?.push(unit),
        cgroupV2: options.cgroupV2,
        output: { stdout: "/host/io/init-stdout", stderr: "/host/io/init-stderr" },
      }),
      dockerInitSpecOpt("/usr/bin/tini-static"),
      hooksSpecOpt({ prestart: [{ path: "/usr/bin/global", args: ["global"] }] }),
    ],
  });
}

function assertThrowsKind(fn: () => unknown, kind: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal(kindOf(err), kind, messageOf(err));
    assert.match(messageOf(err), pattern);
    return true;
  });
}

Deno.test("validateRich() refuses --initscript and --initcmd without --rich", () => {
  assertThrowsKind(
    () => validateRich({ InitScript: "/init.sh" }),
    "InvalidArgument",
    /^--initscript needs a rich container: add --rich/,
  );
  assertThrowsKind(
    () => validateRich({ InitScript: "/a", InitCmd: "true" }),
    "InvalidArgument",
    /^--initscript and --initcmd need a rich container/,
  );
  assertThrowsKind(
    () => validateRich({ RichMode: "dumb-init" }),
    "InvalidArgument",
    /--rich-mode needs a rich container/,
  );
  validateRich({});
  validateRich({ Rich: true, InitScript: "/init.sh", InitCmd: "echo hi" });
});

Deno.test("validateRich() checks the mode and the init script's path", () => {
  assertThrowsKind(
    () => validateRich({ Rich: true, RichMode: "upstart" }),
    "InvalidArgument",
    /invalid rich mode upstart: want one of dumb-init, sbin-init, systemd/,
  );
  for (const mode of ["dumb-init", "sbin-init", "systemd"]) {
    validateRich({ Rich: true, RichMode: mode, InitScript: "/init.sh" });
  }
  assertThrowsKind(
    () => validateRich({ Rich: true, InitScript: "init.sh" }),
    "InvalidArgument",
    /want an absolute path inside the container/,
  );
});

Deno.test("richSpecOpts() leaves a plain container alone", () => {
  const spec = build({});
  assert.deepEqual(spec.process.args, ["sleep", "100"]);
  assert.equal(spec.mounts.find((m) => m.destination === INIT_IN_CONTAINER), undefined);
});

Deno.test("richSpecOpts() makes the static init pid 1, bind-mounted read-only", () => {
  const spec = build({ Rich: true });
  assert.deepEqual(spec.process.args, [INIT_IN_CONTAINER, "-s", "-g", "--", "sleep", "100"]);
  assert.deepEqual(spec.mounts.find((m) => m.destination === INIT_IN_CONTAINER), {
    destination: INIT_IN_CONTAINER,
    type: "bind",
    source: "/usr/bin/tini-static",
    options: ["rbind", "ro", "nosuid", "nodev"],
  });
  assert.equal(spec.mounts.find((m) => m.destination === RUN_DIR_IN_CONTAINER), undefined);
});

Deno.test("richSpecOpts() runs the init step through the wrapper and mounts the run dir", () => {
  const spec = build({ Rich: true, InitScript: "/init.sh", InitCmd: "echo hi" });
  assert.deepEqual(spec.process.args, [
    INIT_IN_CONTAINER,
    "-s",
    "-g",
    "--",
    "/bin/sh",
    "-c",
    INIT_STEP_WRAPPER,
    "pouch-init",
    "/init.sh",
    "echo hi",
    "",
    "sleep",
    "100",
  ]);
  const run = spec.mounts.find((m) => m.destination === RUN_DIR_IN_CONTAINER);
  assert.equal(run?.source, RUN_DIR);
  assert.ok(run?.options.includes("rw"));
});

Deno.test("--init runs the command under the static init at /sbin/docker-init", () => {
  const spec = build({}, { Init: true });
  assert.deepEqual(spec.process.args, [DOCKER_INIT_IN_CONTAINER, "--", "sleep", "100"]);
  const init = spec.mounts.find((m) => m.destination === DOCKER_INIT_IN_CONTAINER);
  assert.deepEqual(init?.options, ["rbind", "ro", "nosuid", "nodev"]);
  // A rich container has its own init.
  const rich = build({ Rich: true }, { Init: true });
  assert.equal(rich.process.args[0], INIT_IN_CONTAINER);
  assert.equal(rich.mounts.find((m) => m.destination === DOCKER_INIT_IN_CONTAINER), undefined);
});

Deno.test("systemd mode: systemd is pid 1 as root, the command a unit, cgroup and /run set up", () => {
  const units: string[] = [];
  const spec = build(
    { Rich: true, RichMode: "systemd", Env: ["A=1"], WorkingDir: "/srv" },
    {},
    { imageInit: SYSTEMD, units },
  );
  assert.deepEqual(spec.process.args, ["/lib/systemd/systemd"]);
  assert.deepEqual(spec.process.user, { uid: 0, gid: 0, additionalGids: [0] });
  assert.equal(spec.process.cwd, "/");
  assert.ok(spec.process.env.includes("container=pouch"));
  assert.ok(spec.linux.namespaces.some((ns) => ns.type === "cgroup"));
  const at = (destination: string) => spec.mounts.find((m) => m.destination === destination);
  assert.equal(at("/run")?.type, "tmpfs");
  assert.equal(at("/run/lock")?.type, "tmpfs");
  assert.equal(at("/tmp")?.type, "tmpfs");
  assert.deepEqual(at("/sys/fs/cgroup/systemd"), {
    destination: "/sys/fs/cgroup/systemd",
    type: "bind",
    source: `/sys/fs/cgroup/systemd/pouch/${ID}`,
    options: ["rbind", "rw", "nosuid", "nodev", "noexec"],
  });
  // The controllers holding the limits stay read-only.
  assert.ok(at("/sys/fs/cgroup")?.options.includes("ro"));
  assert.equal(at(APP_UNIT_DIR_IN_CONTAINER)?.source, "/host/units");
  assert.equal(at("/dev/console")?.source, "/host/io/init-stdout");
  assert.equal(at(APP_STDOUT_IN_CONTAINER)?.source, "/host/io/init-stdout");
  assert.equal(at(APP_STDERR_IN_CONTAINER)?.source, "/host/io/init-stderr");
  // /run/systemd/system lands on the /run tmpfs, so it comes after it.
  const order = spec.mounts.map((m) => m.destination);
  assert.ok(order.indexOf("/run") < order.indexOf(APP_UNIT_DIR_IN_CONTAINER));
  assert.equal(units.length, 1);
  assert.match(units[0]!, /^ExecStart="sleep" "100"$/m);
  assert.match(units[0]!, /^WorkingDirectory=\/srv$/m);
  assert.match(units[0]!, /^Environment="A=1"$/m);
  assert.match(units[0]!, /^WantedBy=multi-user.target$/m);
});

Deno.test("systemd mode: a command naming the init is its command line; no command, no unit", () => {
  const units: string[] = [];
  const spec = build(
    { Rich: true, RichMode: "systemd", Cmd: ["/sbin/init", "--log-level=debug"] },
    {},
    { imageInit: { ...SYSTEMD, commandIsInit: true }, units },
  );
  assert.deepEqual(spec.process.args, ["/sbin/init", "--log-level=debug"]);
  assert.deepEqual(units, []);
  assert.equal(spec.mounts.find((m) => m.destination === APP_UNIT_DIR_IN_CONTAINER), undefined);
  // On a cgroup v2 host the namespaced unified hierarchy is made writable instead.
  const v2 = build({ Rich: true, RichMode: "systemd" }, {}, { imageInit: SYSTEMD, cgroupV2: true });
  assert.ok(!v2.mounts.find((m) => m.type === "cgroup")?.options.includes("ro"));
  assert.equal(v2.mounts.find((m) => m.destination === "/sys/fs/cgroup/systemd"), undefined);
});

Deno.test("sbin-init mode: a non-systemd init starts the command through the launcher", () => {
  const spec = build({ Rich: true, RichMode: "sbin-init" }, {}, { imageInit: BUSYBOX_INIT });
  assert.deepEqual(spec.process.args, [
    "/bin/sh",
    "-c",
    INIT_LAUNCHER,
    "pouch-init",
    "/sbin/init",
    "sleep",
    "100",
  ]);
  assert.equal(spec.mounts.find((m) => m.destination === "/sys/fs/cgroup/systemd"), undefined);
  assert.equal(spec.mounts.find((m) => m.destination === "/dev/console"), undefined);
  // With an init step the wrapper runs it, starts the command and execs the init.
  const stepped = build(
    { Rich: true, RichMode: "sbin-init", InitScript: "/init.sh" },
    {},
    { imageInit: BUSYBOX_INIT },
  );
  assert.deepEqual(stepped.process.args, [
    "/bin/sh",
    "-c",
    INIT_STEP_WRAPPER,
    "pouch-init",
    "/init.sh",
    "",
    "/sbin/init",
    "sleep",
    "100",
  ]);
  // systemd behind /sbin/init: the init step's wrapper execs it; the command is a unit.
  const units: string[] = [];
  const systemd = build(
    { Rich: true, RichMode: "sbin-init", InitCmd: "true" },
    {},
    { imageInit: { ...SYSTEMD, path: "/sbin/init" }, units },
  );
  assert.deepEqual(systemd.process.args.slice(4), ["", "true", "/sbin/init"]);
  assert.equal(units.length, 1);
});

Deno.test("appUnit() quotes words so systemd expands nothing", () => {
  assert.equal(quoteExecWord(`a b"c\\d$HOME%n`), `"a b\\"c\\\\d$$HOME%%n"`);
  assert.equal(quoteUnitString("X=$y%z\n"), `"X=$y%%z\\n"`);
  const spec = build({ Tty: true }, {});
  spec.process.user = { uid: 1000, gid: 1000, additionalGids: [1000, 27] };
  const unit = appUnit(spec, ["/bin/app", "--x"]);
  assert.match(unit, /^User=1000$/m);
  assert.match(unit, /^SupplementaryGroups=27$/m);
  assert.match(unit, /^StandardOutput=file:\/dev\/console$/m);
});

Deno.test("hooksSpecOpt() puts the daemon's hooks first, then the container's", () => {
  const spec = build({}, {
    PrestartHooks: ["/usr/local/bin/log-start --verbose  now"],
    PoststopHooks: ["/usr/local/bin/log-stop"],
  });
  assert.deepEqual(spec.hooks, {
    prestart: [
      { path: "/usr/bin/global", args: ["global"] },
      {
        path: "/usr/local/bin/log-start",
        args: ["/usr/local/bin/log-start", "--verbose", "now"],
      },
    ],
    poststop: [{ path: "/usr/local/bin/log-stop", args: ["/usr/local/bin/log-stop"] }],
  });
  const none = buildSpec(inputOf({}), { cpuCount: 4, extraOpts: [hooksSpecOpt()] });
  assert.equal(none.hooks, undefined);
});

Deno.test("parseHook() and validateHooks() want an absolute path", () => {
  assert.deepEqual(parseHook("/bin/x a", "prestart"), { path: "/bin/x", args: ["/bin/x", "a"] });
  assert.throws(
    () => validateHooks({ PrestartHooks: ["x a"] }),
    (err: unknown) =>
      isInvalidArgument(err) &&
      messageOf(err) === 'invalid prestart hook "x a": want an absolute PATH [ARG...]',
  );
  assert.throws(() => validateHooks({ PoststopHooks: [" "] }), isInvalidArgument);
});

Deno.test("awaitInitStep() reads the wrapper's status and output", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const exited = () => Promise.resolve(false);
    const waiting = awaitInitStep(dir, { timeoutMs: 5000, intervalMs: 5, exited });
    await Deno.writeTextFile(`${dir}/${INIT_OUTPUT_FILE}`, "boom\n");
    await Deno.writeTextFile(`${dir}/${INIT_STATUS_FILE}`, "3\n");
    assert.deepEqual(await waiting, { ok: false, exitCode: 3, output: "boom\n" });

    await resetInitStep(dir);
    await Deno.writeTextFile(`${dir}/${INIT_STATUS_FILE}`, "0\n");
    assert.deepEqual(await awaitInitStep(dir, { timeoutMs: 1000, exited }), { ok: true });

    await resetInitStep(dir);
    const timedOut = await awaitInitStep(dir, { timeoutMs: 30, intervalMs: 5, exited });
    assert.deepEqual(timedOut, { ok: false, exitCode: undefined, output: "", reason: "timeout" });
    const gone = await awaitInitStep(dir, {
      timeoutMs: 5000,
      intervalMs: 1,
      exited: () => Promise.resolve(true),
    });
    assert.equal(gone.ok === false && gone.exitCode === undefined && gone.reason, "exited");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs the wrapper with the host's /bin/sh, its run dir moved to `dir`. */
async function runWrapper(
  dir: string,
  script: string,
  cmd: string,
  args: string[],
  init = "",
) {
  const wrapper = INIT_STEP_WRAPPER.replaceAll(RUN_DIR_IN_CONTAINER, dir);
  const result = await new Deno.Command("/bin/sh", {
    args: ["-c", wrapper, "pouch-init", script, cmd, init, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: result.code,
    stdout: new TextDecoder().decode(result.stdout),
    status: await Deno.readTextFile(`${dir}/${INIT_STATUS_FILE}`).catch(() => ""),
    output: await Deno.readTextFile(`${dir}/${INIT_OUTPUT_FILE}`).catch(() => ""),
  };
}

Deno.test("the wrapper runs the script and the command, then execs the container's command", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/init.sh`, "echo from-script\n"); // not executable: sh runs it
    const ok = await runWrapper(dir, `${dir}/init.sh`, "echo from-cmd", ["echo", "app", "a b"]);
    assert.deepEqual(ok, {
      code: 0,
      stdout: "app a b\n",
      status: "0\n",
      output: "from-script\nfrom-cmd\n",
    });

    await Deno.writeTextFile(`${dir}/init.sh`, "echo broken >&2; exit 7\n");
    const failed = await runWrapper(dir, `${dir}/init.sh`, "echo never", ["echo", "app"]);
    assert.deepEqual(failed, { code: 7, stdout: "", status: "7\n", output: "broken\n" });

    const cmdOnly = await runWrapper(dir, "", "exit 4", ["echo", "app"]);
    assert.equal(cmdOnly.code, 4);
    assert.equal(cmdOnly.status, "4\n");

    // With an init: the command starts in the background, then the init replaces the shell.
    await Deno.writeTextFile(`${dir}/init`, `#!/bin/sh\nwait; echo init-done\n`);
    await Deno.chmod(`${dir}/init`, 0o755);
    const withInit = await runWrapper(dir, "", "true", ["echo", "app"], `${dir}/init`);
    assert.equal(withInit.code, 0);
    assert.equal(withInit.status, "0\n");
    assert.match(withInit.stdout, /app\n[^]*init-done\n|init-done\n/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findImageInit() follows the image's symlinks and names what is missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/usr/lib/systemd`, { recursive: true });
    await Deno.mkdir(`${dir}/usr/sbin`, { recursive: true });
    await Deno.writeTextFile(`${dir}/usr/lib/systemd/systemd`, "");
    await Deno.chmod(`${dir}/usr/lib/systemd/systemd`, 0o755);
    await Deno.symlink("usr/lib", `${dir}/lib`);
    await Deno.symlink("usr/sbin", `${dir}/sbin`);
    // Absolute: resolved inside the image, not on the host.
    await Deno.symlink("/lib/systemd/systemd", `${dir}/usr/sbin/init`);
    const mounts = [{ type: "bind", source: dir, target: "", options: ["rbind"] }];
    const systemd = await findImageInit(mounts, {
      mode: "systemd",
      image: "img",
      command: ["/sbin/init"],
    });
    assert.deepEqual(systemd, {
      path: "/lib/systemd/systemd",
      resolved: "/usr/lib/systemd/systemd",
      systemd: true,
      commandIsInit: true,
    });
    const sbin = await findImageInit(mounts, { mode: "sbin-init", image: "img", command: ["x"] });
    assert.deepEqual(sbin, { ...systemd, path: "/sbin/init", commandIsInit: false });

    await Deno.remove(`${dir}/usr/lib/systemd/systemd`);
    for (const mode of ["systemd", "sbin-init"]) {
      await assert.rejects(
        findImageInit(mounts, { mode, image: "img", command: [] }),
        (err: unknown) => isInvalidArgument(err) && /image img has no/.test(messageOf(err)),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
