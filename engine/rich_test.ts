import assert from "node:assert/strict";
import { isInvalidArgument, kindOf, messageOf } from "./errors.ts";
import {
  awaitInitStep,
  hooksSpecOpt,
  INIT_IN_CONTAINER,
  INIT_OUTPUT_FILE,
  INIT_STATUS_FILE,
  INIT_STEP_WRAPPER,
  parseHook,
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

function build(config: ContainerConfig, hostConfig: HostConfig = {}): OciSpec {
  return buildSpec(inputOf(config, hostConfig), {
    cpuCount: 4,
    extraOpts: [
      ...richSpecOpts({ staticInit: "/usr/bin/tini-static", runDir: RUN_DIR }),
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

Deno.test("validateRich() checks the mode: unknown is invalid, sbin-init and systemd not yet", () => {
  assertThrowsKind(
    () => validateRich({ Rich: true, RichMode: "upstart" }),
    "InvalidArgument",
    /invalid rich mode upstart: want one of dumb-init, sbin-init, systemd/,
  );
  for (const mode of ["sbin-init", "systemd"]) {
    assertThrowsKind(
      () => validateRich({ Rich: true, RichMode: mode }),
      "NotImplemented",
      new RegExp(`rich mode ${mode} is not supported yet`),
    );
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
    "sleep",
    "100",
  ]);
  const run = spec.mounts.find((m) => m.destination === RUN_DIR_IN_CONTAINER);
  assert.equal(run?.source, RUN_DIR);
  assert.ok(run?.options.includes("rw"));
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
async function runWrapper(dir: string, script: string, cmd: string, args: string[]) {
  const wrapper = INIT_STEP_WRAPPER.replaceAll(RUN_DIR_IN_CONTAINER, dir);
  const result = await new Deno.Command("/bin/sh", {
    args: ["-c", wrapper, "pouch-init", script, cmd, ...args],
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
