import assert from "node:assert/strict";
import { isInvalidArgument } from "./errors.ts";
import { type ExecConfig, execProcessSpec, validateExecConfig } from "./exec.ts";
import type { OciProcess } from "./spec.ts";

function invalid(config: unknown, message: RegExp): void {
  assert.throws(() => validateExecConfig(config as ExecConfig), (err: unknown) => {
    assert.ok(isInvalidArgument(err), String(err));
    assert.match((err as Error).message, message);
    return true;
  });
}

Deno.test("validateExecConfig() fills in Docker's defaults", () => {
  assert.deepEqual(validateExecConfig({ Cmd: ["ls", "-l"] }), {
    user: "",
    privileged: false,
    tty: false,
    consoleSize: undefined,
    attachStdin: false,
    attachStdout: false,
    attachStderr: false,
    detachKeys: "",
    env: [],
    workingDir: "",
    cmd: ["ls", "-l"],
  });
  const full = validateExecConfig({
    Cmd: ["sh"],
    Tty: true,
    AttachStdin: true,
    User: "nobody",
    Env: ["A=1"],
    WorkingDir: "/tmp",
    DetachKeys: "ctrl-a,x",
    ConsoleSize: [40, 120],
    Privileged: true,
  });
  assert.equal(full.tty, true);
  assert.deepEqual(full.consoleSize, { height: 40, width: 120 });
  assert.equal(full.detachKeys, "ctrl-a,x");
});

Deno.test("validateExecConfig() refuses bad configs with clear messages", () => {
  invalid({}, /^No exec command specified$/);
  invalid({ Cmd: [] }, /^No exec command specified$/);
  invalid({ Cmd: "ls" }, /Cmd must be an array of strings/);
  invalid({ Cmd: ["ls", 1] }, /Cmd must be an array of strings/);
  invalid({ Cmd: ["ls"], Env: "A=1" }, /Env must be an array/);
  invalid({ Cmd: ["ls"], Env: ["=x"] }, /invalid environment variable/);
  invalid({ Cmd: ["ls"], WorkingDir: "tmp" }, /needs to be an absolute path/);
  invalid({ Cmd: ["ls"], DetachKeys: "ctrl-1" }, /^Invalid detach keys \(ctrl-1\) provided$/);
  invalid({ Cmd: ["ls"], ConsoleSize: [-1, 5] }, /invalid ConsoleSize/);
  invalid([], /must be a JSON object/);
});

const base: OciProcess = {
  terminal: true,
  user: { uid: 0, gid: 0, additionalGids: [0, 10] },
  args: ["sh"],
  env: ["PATH=/bin", "HOSTNAME=abc", "TERM=xterm", "A=container"],
  cwd: "/srv",
  capabilities: {
    bounding: ["CAP_CHOWN"],
    effective: ["CAP_CHOWN"],
    permitted: ["CAP_CHOWN"],
  },
  rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
  noNewPrivileges: true,
};

Deno.test("execProcessSpec() keeps the container's process but the command, env and cwd", () => {
  const process = execProcessSpec(
    base,
    validateExecConfig({ Cmd: ["env"], Env: ["A=exec", "B=2", "HOSTNAME"] }),
  );
  assert.deepEqual(process.args, ["env"]);
  assert.equal(process.terminal, false);
  assert.equal(process.cwd, "/srv");
  // The container's TERM belonged to its TTY; a bare name unsets a variable.
  assert.deepEqual(process.env, ["PATH=/bin", "A=exec", "B=2"]);
  assert.deepEqual(process.user, base.user);
  assert.deepEqual(process.capabilities, base.capabilities);
  assert.deepEqual(process.rlimits, base.rlimits);
  assert.equal(process.noNewPrivileges, true);
  // The base is not changed.
  assert.deepEqual(base.args, ["sh"]);
});

Deno.test("execProcessSpec() applies -t, -w, -u and --privileged", () => {
  const process = execProcessSpec(
    { ...base, env: ["PATH=/bin"], terminal: false },
    validateExecConfig({
      Cmd: ["sh"],
      Tty: true,
      WorkingDir: "/tmp",
      ConsoleSize: [30, 100],
      Privileged: true,
    }),
    {
      user: { uid: 1000, gid: 1000, additionalGids: [1000] },
      capabilities: ["CAP_CHOWN", "CAP_SYS_ADMIN"],
    },
  );
  assert.equal(process.terminal, true);
  assert.deepEqual(process.env, ["PATH=/bin", "TERM=xterm"]);
  assert.equal(process.cwd, "/tmp");
  assert.deepEqual(process.consoleSize, { height: 30, width: 100 });
  assert.deepEqual(process.user, { uid: 1000, gid: 1000, additionalGids: [1000] });
  // A non-root user gets the set only as bounding, as create does.
  assert.deepEqual(process.capabilities, { bounding: ["CAP_CHOWN", "CAP_SYS_ADMIN"] });
  const root = execProcessSpec(base, validateExecConfig({ Cmd: ["sh"], Privileged: true }), {
    capabilities: ["CAP_CHOWN", "CAP_SYS_ADMIN"],
  });
  assert.deepEqual(root.capabilities.effective, ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
});
