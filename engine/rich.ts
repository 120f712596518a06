/**
 * Rich containers (PouchContainer's `--rich`) and OCI hooks, as steps of the OCI spec.
 *
 * PouchContainer needed a patched runc for rich mode; pouch builds the spec itself instead:
 *
 * - **dumb-init mode** (the default): a static init from the host is bind-mounted read-only at
 *   {@link INIT_IN_CONTAINER} and becomes pid 1, running the image's entrypoint and command as
 *   its child: it forwards signals to the child's process group and reaps orphaned zombies, as
 *   dumb-init does. The binary is Debian's `tini-static` (`tini -s -g --`), not `dumb-init`:
 *   Debian's `/usr/bin/dumb-init` is dynamically linked against glibc, so it cannot run in a
 *   busybox image that has no libc, while `tini-static` is statically linked and has the same
 *   behaviour with `-g` (signals go to the child's whole process group).
 * - **sbin-init** and **systemd**: not in this slice; {@link validateRich} says so.
 * - **init script / init command** (`--initscript PATH`, `--initcmd CMD`): the init runs
 *   `/bin/sh -c WRAPPER` ({@link INIT_STEP_WRAPPER}) before the command on every start. The
 *   wrapper runs the script, writes its output and exit code into a per-container directory of
 *   the host bind-mounted at {@link RUN_DIR_IN_CONTAINER}, and either execs the command or exits
 *   with the script's code. The daemon's start waits (bounded) for that status file, so a failing
 *   script fails `pouch start` with the script's output ({@link awaitInitStep}). runc cannot exec
 *   into a created-but-not-started task, hence the wrapper.
 *
 * Hooks: `HostConfig.PrestartHooks` / `PoststopHooks` (`PATH ARG...` strings) and the daemon
 * config's `hooks` become the spec's `hooks`, which runc runs on the host with the OCI state JSON
 * on stdin.
 *
 * @module
 */
import { invalidArgument, notImplemented } from "./errors.ts";
import type { OciHook, OciHooks, SpecOpt } from "./spec.ts";
import type { ContainerConfig, HostConfig } from "./types.ts";

/** The rich modes PouchContainer defined. */
export const RICH_MODES: readonly string[] = ["dumb-init", "sbin-init", "systemd"];

/** The mode of `--rich` without `--rich-mode`. */
export const DEFAULT_RICH_MODE = "dumb-init";

/** The host's static init (Debian package `tini`), used for dumb-init mode. */
export const DEFAULT_STATIC_INIT = "/usr/bin/tini-static";

/** Where the init appears in the container: a path no image uses. */
export const INIT_IN_CONTAINER = "/.pouch/init";

/** Where the per-container run directory of the host appears in the container. */
export const RUN_DIR_IN_CONTAINER = "/.pouch/run";

/** The file (in the run directory) where the wrapper writes the init step's exit code. */
export const INIT_STATUS_FILE = "init.status";

/** The file (in the run directory) where the wrapper writes the init step's output. */
export const INIT_OUTPUT_FILE = "init.out";

/** The shell that runs the init step; images without it cannot use `--initscript`. */
export const INIT_STEP_SHELL = "/bin/sh";

/**
 * The shell program that runs the init script (`$1`, may be empty) then the init command (`$2`,
 * may be empty), then execs the container's command (`$3...`). The output goes to a file, not
 * the logs, so that the daemon can put it into the start's error; the status file is written
 * last, in one `echo`, so a non-empty status file means the step has finished.
 */
export const INIT_STEP_WRAPPER = [
  `script=$1; cmd=$2; shift 2`,
  `run=${RUN_DIR_IN_CONTAINER}; rc=0`,
  `: > "$run/${INIT_OUTPUT_FILE}"`,
  `if [ -n "$script" ]; then`,
  `  if [ -x "$script" ]; then "$script"; else ${INIT_STEP_SHELL} "$script"; fi` +
  ` < /dev/null >> "$run/${INIT_OUTPUT_FILE}" 2>&1`,
  `  rc=$?`,
  `fi`,
  `if [ "$rc" -eq 0 ] && [ -n "$cmd" ]; then`,
  `  ${INIT_STEP_SHELL} -c "$cmd" < /dev/null >> "$run/${INIT_OUTPUT_FILE}" 2>&1`,
  `  rc=$?`,
  `fi`,
  `echo "$rc" > "$run/${INIT_STATUS_FILE}"`,
  `if [ "$rc" -ne 0 ]; then exit "$rc"; fi`,
  `exec "$@"`,
].join("\n");

/**
 * Checks the rich fields of a create request: `RichMode` is known, the modes of later slices
 * are refused clearly, and `InitScript` / `InitCmd` come only with `Rich`.
 *
 * @throws InvalidArgument for a bad combination, NotImplemented for sbin-init and systemd.
 */
export function validateRich(config: ContainerConfig): void {
  const initStep = [
    config.InitScript ? "--initscript" : "",
    config.InitCmd ? "--initcmd" : "",
  ].filter((flag) => flag !== "");
  if (!config.Rich) {
    if (initStep.length > 0) {
      throw invalidArgument(
        `${initStep.join(" and ")} ${
          initStep.length > 1 ? "need" : "needs"
        } a rich container: add --rich (Rich: true)`,
      );
    }
    if (config.RichMode) {
      throw invalidArgument("--rich-mode needs a rich container: add --rich (Rich: true)");
    }
    return;
  }
  const mode = config.RichMode || DEFAULT_RICH_MODE;
  if (!RICH_MODES.includes(mode)) {
    throw invalidArgument(
      `invalid rich mode ${mode}: want one of ${RICH_MODES.join(", ")}`,
    );
  }
  if (mode !== "dumb-init") {
    throw notImplemented(
      `rich mode ${mode} is not supported yet: use --rich-mode dumb-init (the default)`,
    );
  }
  if (config.InitScript !== undefined && !config.InitScript.startsWith("/")) {
    throw invalidArgument(
      `invalid --initscript ${config.InitScript}: want an absolute path inside the container`,
    );
  }
}

/** Whether the container runs an init script or command before its command. */
export function hasInitStep(config: ContainerConfig): boolean {
  return config.Rich === true && (!!config.InitScript || !!config.InitCmd);
}

/** Options of {@link richSpecOpts}. */
export interface RichSpecOptions {
  /** The host's static init binary (see {@link DEFAULT_STATIC_INIT}). */
  staticInit: string;
  /** The host directory bind-mounted at {@link RUN_DIR_IN_CONTAINER} (init step only). */
  runDir: string;
}

/**
 * The spec steps of a rich container (none for a plain one): the init bind-mounted read-only,
 * the process rewritten to `init -s -g -- [sh -c WRAPPER pouch-init SCRIPT CMD --] args...`,
 * and the run directory mounted when there is an init step.
 */
export function richSpecOpts(options: RichSpecOptions): SpecOpt[] {
  return [(spec, input) => {
    if (!input.config.Rich) return;
    spec.mounts.push({
      destination: INIT_IN_CONTAINER,
      type: "bind",
      source: options.staticInit,
      options: ["rbind", "ro", "nosuid", "nodev"],
    });
    const step: string[] = [];
    if (hasInitStep(input.config)) {
      spec.mounts.push({
        destination: RUN_DIR_IN_CONTAINER,
        type: "bind",
        source: options.runDir,
        options: ["rbind", "rw", "nosuid", "nodev", "noexec"],
      });
      step.push(
        INIT_STEP_SHELL,
        "-c",
        INIT_STEP_WRAPPER,
        "pouch-init",
        input.config.InitScript ?? "",
        input.config.InitCmd ?? "",
      );
    }
    // -s: reap as a subreaper even when not pid 1 (--pid host); -g: signal the child's
    // process group, as dumb-init does.
    spec.process.args = [INIT_IN_CONTAINER, "-s", "-g", "--", ...step, ...spec.process.args];
  }];
}

/** The result of the init step of one start. */
export type InitStepResult =
  | { ok: true }
  | { ok: false; exitCode: number; output: string }
  | { ok: false; exitCode: undefined; output: string; reason: "timeout" | "exited" };

/** Options of {@link awaitInitStep}. */
export interface AwaitInitStepOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** How often to look; default 20 ms. */
  intervalMs?: number;
  /** Whether the container's task has already exited (then no status will come). */
  exited: () => Promise<boolean>;
}

/**
 * Waits for the wrapper's status file in `runDir` (the host side of the run directory) and
 * reports whether the init step succeeded, with its output when it did not.
 */
export async function awaitInitStep(
  runDir: string,
  options: AwaitInitStepOptions,
): Promise<InitStepResult> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 20;
  const output = () => Deno.readTextFile(`${runDir}/${INIT_OUTPUT_FILE}`).catch(() => "");
  for (let round = 0;; round++) {
    const status = await Deno.readTextFile(`${runDir}/${INIT_STATUS_FILE}`).catch(() => "");
    if (status.trim() !== "") {
      const exitCode = Number(status.trim());
      if (exitCode === 0) return { ok: true };
      return { ok: false, exitCode, output: await output() };
    }
    // Asking containerd costs a round trip: every 10th round is enough.
    if (round % 10 === 9 && await options.exited()) {
      return { ok: false, exitCode: undefined, output: await output(), reason: "exited" };
    }
    if (Date.now() >= deadline) {
      return { ok: false, exitCode: undefined, output: await output(), reason: "timeout" };
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Clears the previous start's status and output so that {@link awaitInitStep} sees this one. */
export async function resetInitStep(runDir: string): Promise<void> {
  for (const name of [INIT_STATUS_FILE, INIT_OUTPUT_FILE]) {
    await Deno.remove(`${runDir}/${name}`).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Hooks.

/**
 * Parses a hook given as `PATH ARG...` (`--prestart-hook "/usr/bin/log-start --verbose"`):
 * the OCI hook's `args` start with the path, as `argv[0]`.
 *
 * @throws InvalidArgument unless the path is absolute.
 */
export function parseHook(text: string, kind: string): OciHook {
  const words = text.trim().split(/\s+/).filter((word) => word !== "");
  const path = words[0];
  if (!path || !path.startsWith("/")) {
    throw invalidArgument(`invalid ${kind} hook "${text}": want an absolute PATH [ARG...]`);
  }
  return { path, args: words };
}

/**
 * Checks a hook of the daemon config (`{"path": "/bin/x", "args": ["x"], "env": [...],
 * "timeout": 5}`) and returns it typed.
 *
 * @throws InvalidArgument naming `where` for a bad shape.
 */
export function checkHook(value: unknown, where: string): OciHook {
  const hook = value as Partial<OciHook> | null;
  if (typeof hook !== "object" || hook === null || typeof hook.path !== "string") {
    throw invalidArgument(`${where}: a hook needs a "path"`);
  }
  if (!hook.path.startsWith("/")) {
    throw invalidArgument(`${where}: hook path ${hook.path} is not absolute`);
  }
  const strings = (list: unknown) =>
    list === undefined || (Array.isArray(list) && list.every((s) => typeof s === "string"));
  if (!strings(hook.args) || !strings(hook.env)) {
    throw invalidArgument(`${where}: hook "args" and "env" must be lists of strings`);
  }
  if (hook.timeout !== undefined && (!Number.isInteger(hook.timeout) || hook.timeout <= 0)) {
    throw invalidArgument(`${where}: hook "timeout" must be a positive number of seconds`);
  }
  const result: OciHook = { path: hook.path, args: hook.args ?? [hook.path] };
  if (hook.env) result.env = [...hook.env];
  if (hook.timeout) result.timeout = hook.timeout;
  return result;
}

/** Checks `HostConfig.PrestartHooks` and `PoststopHooks`. */
export function validateHooks(hostConfig: HostConfig): void {
  for (const hook of hostConfig.PrestartHooks ?? []) parseHook(hook, "prestart");
  for (const hook of hostConfig.PoststopHooks ?? []) parseHook(hook, "poststop");
}

/**
 * The spec step that sets the OCI hooks: the daemon's `global` ones first, then the
 * container's own (`HostConfig.PrestartHooks`, `PoststopHooks`).
 */
export function hooksSpecOpt(global: OciHooks = {}): SpecOpt {
  return (spec, input) => {
    const prestart = [
      ...(global.prestart ?? []),
      ...(input.hostConfig.PrestartHooks ?? []).map((hook) => parseHook(hook, "prestart")),
    ];
    const poststop = [
      ...(global.poststop ?? []),
      ...(input.hostConfig.PoststopHooks ?? []).map((hook) => parseHook(hook, "poststop")),
    ];
    const hooks: OciHooks = {};
    if (prestart.length > 0) hooks.prestart = prestart;
    if (poststop.length > 0) hooks.poststop = poststop;
    if (Object.keys(hooks).length > 0) spec.hooks = hooks;
  };
}
