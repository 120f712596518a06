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
 * - **sbin-init** and **systemd**: pid 1 is the image's own init ({@link findImageInit}):
 *   `/sbin/init`, or systemd at `/lib/systemd/systemd`, `/usr/lib/systemd/systemd` or behind
 *   `/sbin/init`. The spec gets what such an init needs in a container ({@link initSpecOpts}):
 *   root as its user, `container=pouch` in its environment, tmpfs on `/run`, `/run/lock` and
 *   `/tmp`, and for systemd a private cgroup namespace with its own `name=systemd` hierarchy
 *   writable (the resource controllers stay read-only, so the container cannot lift its own
 *   limits) — no `--privileged` needed. The container's command runs after init: under systemd
 *   as the unit `pouch-app.service` ({@link appUnit}), wanted by `multi-user.target`, with the
 *   container's user, environment and working directory, its output in the container's logs;
 *   under any other init it is started just before the init takes over pid 1, so it is the
 *   init's child. A command that names the init itself (`/sbin/init --debug`) is the init's
 *   own command line instead. The container runs until its init stops, like a machine: systemd
 *   on SIGRTMIN+3, its default stop signal here.
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
import type { Mount } from "./containerd.ts";
import { invalidArgument } from "./errors.ts";
import { resolveRootfsPath } from "./rootfs.ts";
import type { OciHook, OciHooks, OciMount, OciSpec, SpecOpt } from "./spec.ts";
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
 * may be empty), then execs the container's command (`$4...`). With an image init (`$3`, the
 * sbin-init and systemd modes) it starts the command, if any, in the background and execs the
 * init instead, which so becomes pid 1 and the command's parent. The output goes to a file, not
 * the logs, so that the daemon can put it into the start's error; the status file is written
 * last, in one `echo`, so a non-empty status file means the step has finished.
 */
export const INIT_STEP_WRAPPER = [
  `script=$1; cmd=$2; init=$3; shift 3`,
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
  `if [ -z "$init" ]; then exec "$@"; fi`,
  `if [ "$#" -gt 0 ]; then "$@" & fi`,
  `exec "$init"`,
].join("\n");

/**
 * Checks the rich fields of a create request: `RichMode` is known, and `InitScript` /
 * `InitCmd` come only with `Rich`.
 *
 * @throws InvalidArgument for a bad combination.
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

/** A rich container's pid 1 from its image (sbin-init and systemd modes). */
export interface ImageInit {
  /** The init's path in the container, as it is run (`/sbin/init`). */
  path: string;
  /** Where that path leads once symlinks are followed (`/lib/systemd/systemd`). */
  resolved: string;
  /** Whether the init is systemd: the command then runs as a unit. */
  systemd: boolean;
  /**
   * Whether the container's command names the init itself (`/sbin/init --debug`): then it is
   * the init's command line, not an application to run.
   */
  commandIsInit: boolean;
}

/** Where systemd-based images keep systemd, in the order the systemd mode looks. */
export const SYSTEMD_PATHS: readonly string[] = [
  "/lib/systemd/systemd",
  "/usr/lib/systemd/systemd",
  "/sbin/init",
];

/** The unit that runs the command of a systemd rich container. */
export const APP_UNIT = "pouch-app.service";

/** Where the directory holding {@link APP_UNIT} appears: systemd's runtime unit directory. */
export const APP_UNIT_DIR_IN_CONTAINER = "/run/systemd/system";

/** Where a systemd rich container's output FIFOs appear (no terminal): its command's streams. */
export const APP_STDOUT_IN_CONTAINER = "/.pouch/stdout";

/** See {@link APP_STDOUT_IN_CONTAINER}. */
export const APP_STDERR_IN_CONTAINER = "/.pouch/stderr";

/** systemd halts on SIGRTMIN+3: the stop signal of systemd rich containers. */
export const SYSTEMD_STOP_SIGNAL = "SIGRTMIN+3";

/** The rich mode of a container config; undefined for a plain container. */
export function richModeOf(config: ContainerConfig): string | undefined {
  return config.Rich ? config.RichMode || DEFAULT_RICH_MODE : undefined;
}

/** Whether the container's pid 1 is its image's own init (sbin-init and systemd modes). */
export function usesImageInit(config: ContainerConfig): boolean {
  const mode = richModeOf(config);
  return mode === "sbin-init" || mode === "systemd";
}

/**
 * Finds the init a sbin-init or systemd rich container runs as pid 1 in the image's filesystem
 * (`mounts`), following symlinks inside the image.
 *
 * @throws InvalidArgument naming the image when it has none.
 */
export async function findImageInit(
  mounts: Mount[],
  options: { mode: string; image: string; command: readonly string[] },
): Promise<ImageInit> {
  const executable = async (path: string) => {
    const found = await resolveRootfsPath(mounts, path);
    if (!found || !found.info.isFile || ((found.info.mode ?? 0) & 0o111) === 0) return undefined;
    return found.path;
  };
  const program = options.command[0];
  const commandTarget = program?.startsWith("/") ? await executable(program) : undefined;
  if (options.mode === "systemd") {
    for (const path of SYSTEMD_PATHS) {
      const resolved = await executable(path);
      if (resolved && basename(resolved) === "systemd") {
        return { path, resolved, systemd: true, commandIsInit: commandTarget === resolved };
      }
    }
    throw invalidArgument(
      `rich mode systemd runs systemd as pid 1, and image ${options.image} has none at ` +
        `${SYSTEMD_PATHS.join(", ")}`,
    );
  }
  const resolved = await executable("/sbin/init");
  if (!resolved) {
    throw invalidArgument(
      `rich mode sbin-init runs the image's /sbin/init as pid 1, and image ${options.image} ` +
        "has no executable /sbin/init",
    );
  }
  return {
    path: "/sbin/init",
    resolved,
    systemd: basename(resolved) === "systemd",
    commandIsInit: commandTarget === resolved,
  };
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Options of {@link richSpecOpts}. */
export interface RichSpecOptions {
  /** The host's static init binary (see {@link DEFAULT_STATIC_INIT}). */
  staticInit: string;
  /** The host directory bind-mounted at {@link RUN_DIR_IN_CONTAINER} (init step only). */
  runDir: string;
  /** The image's init, for the sbin-init and systemd modes ({@link findImageInit}). */
  imageInit?: ImageInit;
  /** The host directory bind-mounted at {@link APP_UNIT_DIR_IN_CONTAINER} (systemd only). */
  appUnitDir?: string;
  /** Receives the text of {@link APP_UNIT}, for the caller to write into `appUnitDir`. */
  onAppUnit?: (unit: string) => void;
  /** Whether the host has the unified cgroup v2 hierarchy only (no `name=systemd` one). */
  cgroupV2?: boolean;
  /**
   * The host FIFOs of the container's output (systemd only): systemd connects its own standard
   * streams to /dev/null, so its console and the command's unit write to these, bind-mounted
   * in the container, to reach the container's logs.
   */
  output?: { stdout: string; stderr?: string };
}

/**
 * The spec steps of a rich container (none for a plain one). dumb-init mode: the static init
 * bind-mounted read-only and the process rewritten to
 * `init -s -g -- [sh -c WRAPPER pouch-init SCRIPT CMD "" --] args...`. sbin-init and systemd:
 * see {@link imageInitSpecOpt}. The run directory is mounted when there is an init step.
 */
export function richSpecOpts(options: RichSpecOptions): SpecOpt[] {
  return [(spec, input) => {
    const mode = richModeOf(input.config);
    if (mode === undefined) return;
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
    if (mode !== DEFAULT_RICH_MODE) {
      if (!options.imageInit) throw new Error(`rich mode ${mode}: the image's init is not known`);
      imageInitSpecOpt(spec, { ...options, imageInit: options.imageInit, step });
      return;
    }
    spec.mounts.push({
      destination: INIT_IN_CONTAINER,
      type: "bind",
      source: options.staticInit,
      options: ["rbind", "ro", "nosuid", "nodev"],
    });
    if (step.length > 0) step.push("");
    // -s: reap as a subreaper even when not pid 1 (--pid host); -g: signal the child's
    // process group, as dumb-init does.
    spec.process.args = [INIT_IN_CONTAINER, "-s", "-g", "--", ...step, ...spec.process.args];
  }];
}

/** Where Docker's `--init` puts its init in the container. */
export const DOCKER_INIT_IN_CONTAINER = "/sbin/docker-init";

/**
 * Docker's `--init` (`HostConfig.Init`) for a plain container: the static init bind-mounted
 * read-only at {@link DOCKER_INIT_IN_CONTAINER} runs the command as its child
 * (`docker-init -- args...`), forwarding signals and reaping zombies. A rich container has its
 * own init and ignores it.
 */
export function dockerInitSpecOpt(staticInit: string): SpecOpt {
  return (spec, input) => {
    if (!input.hostConfig.Init || input.config.Rich) return;
    spec.mounts.push({
      destination: DOCKER_INIT_IN_CONTAINER,
      type: "bind",
      source: staticInit,
      options: ["rbind", "ro", "nosuid", "nodev"],
    });
    spec.process.args = [DOCKER_INIT_IN_CONTAINER, "--", ...spec.process.args];
  };
}

/**
 * The sbin-init and systemd modes: the image's init becomes pid 1 (after the init step's
 * wrapper, when there is one), running as root with `container=pouch`, tmpfs on `/run`,
 * `/run/lock` and `/tmp`, and for systemd its cgroup hierarchy and the command's unit.
 */
function imageInitSpecOpt(
  spec: OciSpec,
  options: RichSpecOptions & { imageInit: ImageInit; step: string[] },
): void {
  const init = options.imageInit;
  const command = spec.process.args;
  const initArgs = init.commandIsInit ? command : [init.path];
  const app = init.commandIsInit ? [] : command;

  if (init.systemd && app.length > 0) {
    options.onAppUnit?.(appUnit(spec, app));
  }
  const terminal = spec.process.terminal;
  // The init manages the machine: it runs as root, the command as the container's user.
  spec.process.user = { uid: 0, gid: 0, additionalGids: [0] };
  const caps = spec.process.capabilities;
  spec.process.capabilities = {
    bounding: [...caps.bounding],
    effective: [...caps.bounding],
    permitted: [...caps.bounding],
  };
  spec.process.cwd = "/";
  if (!spec.process.env.some((entry) => entry.startsWith("container="))) {
    spec.process.env.push("container=pouch");
  }
  if (init.systemd && !spec.process.terminal && options.output) {
    // The console is the container's output, no terminal: a getty on it can only fail.
    spec.process.env.push("SYSTEMD_GETTY_AUTO=0");
  }

  const taken = new Set(spec.mounts.map((m) => m.destination));
  const extra: OciMount[] = [];
  const tmpfs = (destination: string, options: string[]) => {
    if (!taken.has(destination)) {
      extra.push({ destination, type: "tmpfs", source: "tmpfs", options });
    }
  };
  tmpfs("/run", ["nosuid", "nodev", "mode=755"]);
  tmpfs("/run/lock", ["nosuid", "nodev", "noexec", "size=5m"]);
  tmpfs("/tmp", ["nosuid", "nodev", "mode=1777"]);
  if (init.systemd) {
    if (!spec.linux.namespaces.some((ns) => ns.type === "cgroup")) {
      spec.linux.namespaces.push({ type: "cgroup" });
    }
    if (options.cgroupV2) {
      // The unified hierarchy, seen from the cgroup namespace, is the container's own subtree.
      for (const m of spec.mounts) {
        if (m.type === "cgroup") m.options = m.options.filter((o) => o !== "ro");
      }
    } else if (!taken.has("/sys/fs/cgroup/systemd")) {
      // Only systemd's own hierarchy is writable: the controllers that hold the container's
      // limits stay read-only.
      extra.push({
        destination: "/sys/fs/cgroup/systemd",
        type: "bind",
        source: `/sys/fs/cgroup/systemd${spec.linux.cgroupsPath}`,
        options: ["rbind", "rw", "nosuid", "nodev", "noexec"],
      });
    }
    const output = options.output;
    if (output && !terminal) {
      // With a terminal, runc makes /dev/console the terminal; without one there is none, and
      // systemd's console is the container's output.
      const bindOutput = (destination: string, source: string) =>
        extra.push({
          destination,
          type: "bind",
          source,
          options: ["bind", "rw", "nosuid", "noexec"],
        });
      bindOutput("/dev/console", output.stdout);
      bindOutput(APP_STDOUT_IN_CONTAINER, output.stdout);
      if (output.stderr) bindOutput(APP_STDERR_IN_CONTAINER, output.stderr);
    }
    if (app.length > 0 && options.appUnitDir && !taken.has(APP_UNIT_DIR_IN_CONTAINER)) {
      extra.push({
        destination: APP_UNIT_DIR_IN_CONTAINER,
        type: "bind",
        source: options.appUnitDir,
        options: ["rbind", "rw", "nosuid", "nodev"],
      });
    }
  }
  // After the user's mounts, so that ours land on top of the tmpfs they go in.
  spec.mounts.push(...extra);

  if (options.step.length > 0) {
    // The wrapper runs the init step, then execs the init; the command stays for a
    // non-systemd init, which the wrapper starts just before.
    spec.process.args = [
      ...options.step,
      initArgs.length === 1 ? init.path : "",
      ...(initArgs.length === 1 ? (init.systemd ? [] : app) : initArgs),
    ];
    return;
  }
  if (!init.systemd && app.length > 0) {
    spec.process.args = [
      INIT_STEP_SHELL,
      "-c",
      INIT_LAUNCHER,
      "pouch-init",
      init.path,
      ...app,
    ];
    return;
  }
  spec.process.args = initArgs;
}

/**
 * The shell program that starts a non-systemd image init's command (`$2...`) in the
 * background and execs the init (`$1`), which so becomes pid 1 and the command's parent.
 */
export const INIT_LAUNCHER = [
  `init=$1; shift`,
  `"$@" &`,
  `exec "$init"`,
].join("\n");

/**
 * The systemd unit that runs a rich container's command (`args`) once the system is up, as the
 * process `spec` describes it: its user and groups, environment and working directory. Its
 * output goes to the container's output FIFOs (or its terminal), so to the container's logs.
 */
export function appUnit(spec: OciSpec, args: string[]): string {
  const process = spec.process;
  const lines = [
    "# Written by pouch: the container's command, run by systemd as pid 1.",
    "[Unit]",
    "Description=pouch container command",
    "",
    "[Service]",
    "Type=exec",
    `ExecStart=${args.map(quoteExecWord).join(" ")}`,
    `WorkingDirectory=${(process.cwd || "/").replaceAll("%", "%%")}`,
    `User=${process.user.uid}`,
    `Group=${process.user.gid}`,
  ];
  const groups = (process.user.additionalGids ?? []).filter((gid) => gid !== process.user.gid);
  if (groups.length > 0) lines.push(`SupplementaryGroups=${groups.join(" ")}`);
  for (const entry of process.env) {
    if (entry.startsWith("container=")) continue;
    lines.push(`Environment=${quoteUnitString(entry)}`);
  }
  lines.push(
    "StandardInput=null",
    // With a terminal, runc makes it /dev/console; without, the output FIFOs are mounted.
    `StandardOutput=file:${process.terminal ? "/dev/console" : APP_STDOUT_IN_CONTAINER}`,
    `StandardError=file:${process.terminal ? "/dev/console" : APP_STDERR_IN_CONTAINER}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  );
  return lines.join("\n");
}

/**
 * One word of a unit's `ExecStart=`: double-quoted with C escapes, with `%` and `$` doubled so
 * that systemd expands neither specifiers nor variables in it.
 */
export function quoteExecWord(word: string): string {
  return quoteUnitString(word).replaceAll("$", "$$$$");
}

/**
 * A quoted value of a unit setting such as `Environment=` (C escapes, `%` doubled; `$` means
 * nothing there).
 */
export function quoteUnitString(text: string): string {
  const escaped = text
    .replaceAll("\\", "\\\\")
    .replaceAll('"', '\\"')
    .replaceAll("\n", "\\n")
    .replaceAll("\t", "\\t")
    .replaceAll("%", "%%");
  return `"${escaped}"`;
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
