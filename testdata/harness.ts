/**
 * The integration tests' harness: a real `pouch daemon` (with its own containerd) in a temp
 * directory, its CLI, the Docker CLI and raw API requests against its socket, and a cleanup that
 * leaves no process, mount or file behind.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "../engine/testing.ts";
import { V8_FLAGS } from "../tools/build.ts";
import { splitRule } from "../network/iptables.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const decoder = new TextDecoder();

/** What a command printed and how it ended. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link startDaemon}. */
export interface DaemonOptions {
  /** Extra daemon flags. */
  args?: string[];
  /** The daemon's JSON config file (empty by default). */
  config?: Record<string, unknown>;
  /**
   * A pouch executable (such as a copy of `dist/pouch`) to run as the daemon and the CLI, from
   * its own directory. By default both are `deno run -A main.ts` of this checkout.
   */
  executable?: string;
  /** Extra environment of the daemon (such as test-only `POUCH_FAULTS`). */
  env?: Record<string, string>;
}

/** A daemon under test. */
export interface TestDaemon extends AsyncDisposable {
  /** The temp directory holding everything. */
  dir: string;
  /** The daemon's home dir. */
  home: string;
  /** The API socket path. */
  socket: string;
  /** The daemon's pid. */
  readonly pid: number;
  /** The daemon's log so far. */
  log(): Promise<string>;
  /** Runs `pouch -H unix://SOCK ...args`. */
  pouch(args: string[], options?: { stdin?: Uint8Array }): Promise<CommandResult>;
  /** Runs the Docker CLI with `DOCKER_HOST=unix://SOCK`. */
  docker(args: string[], options?: { stdin?: Uint8Array }): Promise<CommandResult>;
  /** Sends one API request; returns the status and the body text. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  /** Stops the daemon with SIGTERM and waits for it (containers keep running). */
  stop(): Promise<void>;
  /** Kills the daemon with SIGKILL (a crash), leaving containerd and shims running. */
  crash(): Promise<void>;
  /** Starts the daemon again on the same home and socket, with `env` instead of the first's. */
  start(options?: { env?: Record<string, string> }): Promise<void>;
}

/** Runs a `testdata/build_*.sh` image script (idempotent) and returns `testdata/out/TARBALL`. */
async function buildTestImage(script: string, tarball: string): Promise<string> {
  const out = `${root}testdata/out`;
  const result = await new Deno.Command("bash", {
    args: [`${root}testdata/${script}`, out],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(`${script} failed:\n${decoder.decode(result.stderr)}`);
  }
  return `${out}/${tarball}`;
}

/** Builds the busybox image tarballs (once) and returns the docker-save one's path. */
export function busyboxTarball(): Promise<string> {
  return buildTestImage("build_busybox.sh", "busybox.tar");
}

/**
 * Builds the systemd image tarball from the host's own packages (once; see
 * `testdata/build_systemd.sh`) and returns its path.
 */
export function systemdTarball(): Promise<string> {
  return buildTestImage("build_systemd.sh", "systemd.tar");
}

/**
 * Builds the pod sandbox image `pause:latest` from the host's static catatonit (once; see
 * `testdata/build_pause.sh`) and returns its docker-save tarball's path.
 */
export function pauseTarball(): Promise<string> {
  return buildTestImage("build_pause.sh", "pause.tar");
}

/** The container's inspect JSON through the API (asserting a 200). */
// deno-lint-ignore explicit-module-boundary-types
export async function inspectContainer(daemon: TestDaemon, name: string) {
  const { status, body } = await daemon.api("GET", `/containers/${name}/json`);
  if (status !== 200) throw new Error(`inspect ${name}: ${status} ${body}`);
  return JSON.parse(body);
}

/** Starts a daemon in a new temp directory. */
export async function startDaemon(options: DaemonOptions = {}): Promise<TestDaemon> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-it-" });
  const home = `${dir}/home`;
  const socket = `${dir}/pouchd.sock`;
  const logPath = `${dir}/daemon.log`;
  let child: Deno.ChildProcess | undefined;
  let status: Promise<Deno.CommandStatus> | undefined;
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(options.config ?? {}));
  // The program and the arguments that precede pouch's own, and where it runs.
  const program = options.executable ?? Deno.execPath();
  // From the checkout with dist/pouch's V8 flags: the daemon's memory reclaim needs `gc`.
  const programArgs = options.executable ? [] : ["run", "-A", V8_FLAGS, `${root}main.ts`];
  const programDir = options.executable ? dirname(options.executable) : undefined;
  // Daemons of tests running side by side must not share the default bridge or its subnet.
  const networkArgs = (options.args ?? []).includes("--bridge-name") ? [] : [
    "--bridge-name",
    `pt${crypto.randomUUID().slice(0, 8)}`,
    "--bip",
    `10.${100 + Math.floor(Math.random() * 140)}.${Math.floor(Math.random() * 250)}.1/24`,
  ];

  async function start(startOptions: { env?: Record<string, string> } = {}): Promise<void> {
    const logFile = await Deno.open(logPath, { append: true, create: true });
    child = new Deno.Command(program, {
      env: startOptions.env ?? options.env ?? {},
      args: [
        ...programArgs,
        "daemon",
        "--home-dir",
        home,
        "-l",
        `unix://${socket}`,
        "--pidfile",
        `${dir}/pouch.pid`,
        "--config-file",
        `${dir}/config.json`,
        "-D",
        ...networkArgs,
        ...(options.args ?? []),
      ],
      cwd: programDir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pipe = (stream: ReadableStream<Uint8Array>) =>
      stream.pipeTo(
        new WritableStream({ write: (chunk) => void logFile.writeSync(chunk) }),
      ).catch(() => {});
    const piping = Promise.all([pipe(child.stdout), pipe(child.stderr)]);
    status = child.status.then(async (s) => {
      await piping;
      logFile.close();
      return s;
    });
    let exited = false;
    status.then(() => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`daemon exited early:\n${await daemon.log()}`);
      try {
        const response = await fetch("http://pouch/_ping", { client });
        await response.body?.cancel();
        return response.ok;
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, message: "daemon did not answer /_ping" });
  }

  async function run(
    command: string,
    args: string[],
    env: Record<string, string>,
    stdin?: Uint8Array,
    cwd?: string,
  ): Promise<CommandResult> {
    const proc = new Deno.Command(command, {
      args,
      env,
      cwd,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin) {
      const writer = proc.stdin.getWriter();
      await writer.write(stdin);
      await writer.close();
    }
    const result = await proc.output();
    return {
      code: result.code,
      stdout: decoder.decode(result.stdout),
      stderr: decoder.decode(result.stderr),
    };
  }

  const daemon: TestDaemon = {
    dir,
    home,
    socket,
    get pid() {
      return child?.pid ?? 0;
    },
    log: () => Deno.readTextFile(logPath).catch(() => ""),
    pouch: (args, opts) =>
      run(
        program,
        [...programArgs, "-H", `unix://${socket}`, ...args],
        {},
        opts?.stdin,
        programDir,
      ),
    docker: (args, opts) =>
      run("/usr/local/bin/docker", args, {
        DOCKER_HOST: `unix://${socket}`,
        DOCKER_CONFIG: `${dir}/docker-config`,
      }, opts?.stdin),
    async api(method, path, body) {
      const response = await fetch(`http://pouch${path}`, {
        method,
        client,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      });
      return { status: response.status, body: await response.text() };
    },
    async stop() {
      if (!child) return;
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await status;
      child = undefined;
    },
    async crash() {
      if (!child) return;
      try {
        child.kill("SIGKILL");
      } catch {
        // It died already (a test-only fault made it kill itself).
      }
      await status;
      child = undefined;
    },
    start,
    async [Symbol.asyncDispose]() {
      // The default bridge this harness named goes whatever the API answers (a pod still on it
      // keeps the daemon from removing it, and an answer can fail after a restart).
      const bridges: string[] = networkArgs.length > 0 ? [networkArgs[1]!] : [];
      if (child) {
        // Remove every container so that no shim outlives the test.
        const list = await daemon.api("GET", "/containers/json?all=1").catch(() => undefined);
        for (const c of JSON.parse(list?.body || "[]") as Array<{ Id: string }>) {
          await daemon.api("DELETE", `/containers/${c.Id}?force=1`).catch(() => {});
        }
        // The daemon removes its unused bridges when it stops; these go too if it cannot.
        const networks = await daemon.api("GET", "/networks").catch(() => undefined);
        for (const n of parseList(networks?.body) as Array<{ Options?: Record<string, string> }>) {
          const bridge = n.Options?.["com.docker.network.bridge.name"];
          if (bridge) bridges.push(bridge);
        }
      }
      await daemon.stop();
      client.close();
      await killUnder(dir);
      await unmountUnder(dir);
      for (const bridge of bridges) {
        await new Deno.Command("ip", { args: ["link", "del", bridge], stderr: "null" }).output();
      }
      await removeMasqueradeRules(bridges);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };

  try {
    await start();
  } catch (err) {
    await daemon[Symbol.asyncDispose]();
    throw err;
  }
  return daemon;
}

/**
 * Deletes the networks' masquerade rules (commented `pouch masquerade BRIDGE`) that a daemon
 * which could not remove its bridges (a crash, a pod still attached) left in the nat table.
 */
async function removeMasqueradeRules(bridges: string[]): Promise<void> {
  if (bridges.length === 0) return;
  const save = await new Deno.Command("iptables-save", { args: ["-t", "nat"], stderr: "null" })
    .output();
  for (const line of new TextDecoder().decode(save.stdout).split("\n")) {
    const bridge = /--comment "pouch masquerade ([^"]+)"/.exec(line)?.[1];
    if (!bridge || !bridges.includes(bridge) || !line.startsWith("-A POSTROUTING ")) continue;
    // The rule's own words, as iptables-save writes them, name it for -D.
    const args = splitRule(line).slice(1);
    await new Deno.Command("iptables", { args: ["-w", "-t", "nat", "-D", ...args], stderr: "null" })
      .output();
  }
}

/** A JSON list from an API answer; empty when the answer is not one (an error, a 404). */
function parseList(body: string | undefined): unknown[] {
  try {
    const value = JSON.parse(body || "[]");
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

/** Kills every process whose command line mentions `dir` (containerd, shims after a crash). */
export async function killUnder(dir: string): Promise<void> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    if (cmdline.includes(dir) && Number(entry.name) !== Deno.pid) {
      try {
        Deno.kill(Number(entry.name), "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
  }
}

/** Unmounts everything mounted under `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  const points = mountinfo.split("\n").map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point.startsWith(dir + "/"))
    .sort((a, b) => b.length - a.length);
  for (const point of points) {
    await new Deno.Command("umount", { args: ["-l", point], stderr: "null" }).output();
  }
}

/** Runs `pouch ARGS` against `daemon`; throws with its output unless it exits 0. */
export async function pouchOk(daemon: TestDaemon, args: string[]): Promise<string> {
  const result = await daemon.pouch(args);
  if (result.code !== 0) {
    throw new Error(
      `pouch ${args.join(" ")} exited ${result.code}: ${result.stderr}${result.stdout}`,
    );
  }
  return result.stdout;
}

/**
 * Runs `fn` against a fresh daemon with the busybox image loaded, and stops it afterwards; a
 * failure carries the daemon's log.
 */
export async function withBusyboxDaemon(
  fn: (daemon: TestDaemon) => Promise<void>,
  options: DaemonOptions = {},
): Promise<void> {
  const tarball = await busyboxTarball();
  await using daemon = await startDaemon(options);
  try {
    await pouchOk(daemon, ["load", "-i", tarball]);
    await fn(daemon);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- daemon log ---\n${await daemon.log()}`, {
      cause: err,
    });
  }
}

/**
 * Imports an image made of busybox and a few applets, `/etc/version` holding `version` and
 * `/newvol/seed`, with Docker's `-c` changes (CMD, ENV, VOLUME, ...): a second image to upgrade
 * to, built in the test's directory.
 */
export async function importBusyboxVariant(
  daemon: TestDaemon,
  tag: string,
  options: { version: string; changes: string[] },
): Promise<void> {
  const rootfs = `${daemon.dir}/rootfs-${tag.replace(/\W/g, "_")}`;
  for (const dir of ["bin", "etc", "newvol", "tmp", "proc", "sys", "dev"]) {
    await Deno.mkdir(`${rootfs}/${dir}`, { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  for (const applet of ["sh", "sleep", "cat", "env", "ls", "ip", "echo", "sort", "grep", "true"]) {
    await Deno.symlink("busybox", `${rootfs}/bin/${applet}`);
  }
  await Deno.writeTextFile(`${rootfs}/etc/version`, `${options.version}\n`);
  await Deno.writeTextFile(`${rootfs}/newvol/seed`, "seeded by the image\n");
  const tar = `${rootfs}.tar`;
  const packed = await new Deno.Command("tar", { args: ["-C", rootfs, "-cf", tar, "."] }).output();
  if (!packed.success) throw new Error(`tar of ${rootfs} failed`);
  await pouchOk(daemon, ["import", ...options.changes.flatMap((c) => ["-c", c]), tar, tag]);
}
