/**
 * The engines the benchmark compares, each started in a temp directory of its own and driven
 * through its own CLI:
 *
 * - `pouch`: a pouch daemon (no `-D`) with the containerd it starts, and the pouch CLI;
 * - `ctr`: containerd's own client on that same containerd, namespace `bench` (the floor), its
 *   containers run with `--seccomp` (containerd's default profile): pouch, dockerd and podman
 *   all confine containers with a default seccomp profile, whose loading costs runc 20-30 ms
 *   per container here, so a floor without it would not be the same work;
 * - `dockerd`: Debian's dockerd with the containerd it starts, `--bridge none`,
 *   `--iptables=false`, and the Docker CLI on PATH;
 * - `podman`: `podman --root --runroot --tmpdir` in the temp directory with a `containers.conf`
 *   that picks runc and cgroupfs and keeps `default_ulimits` within this host's hard limits.
 *
 * Every container runs with `--network none` (ctr's default) so that the numbers are the
 * engines' and not those of their network plugins. A peer that is not installed is reported
 * as skipped, not as an error.
 *
 * @module
 */
import { type ContainerdProcess, startContainerd } from "../engine/supervisor.ts";
import { killUnder, unmountUnder } from "../testdata/harness.ts";
import { childrenNamed, output, sleep, time, which } from "./_measure.ts";

/** The engines, in the order the report lists them. */
export const PEER_NAMES = ["pouch", "ctr", "dockerd", "podman"] as const;
/** One of {@link PEER_NAMES}. */
export type PeerName = typeof PEER_NAMES[number];

/** An API request's status and body text. */
export interface ApiAnswer {
  status: number;
  body: string;
}

/** A started engine and the CLI arguments of each operation the benchmark times. */
export interface Peer extends AsyncDisposable {
  readonly name: PeerName;
  /** The temp directory holding its state. */
  readonly dir: string;
  /** Versions of the CLI and daemon, for the report. */
  version: string;
  /** The wall time of one CLI invocation in ms; throws if it fails or times out. */
  time(args: string[], timeoutMs?: number): Promise<number>;
  /** Runs the CLI and answers its stdout; throws if it fails. */
  cli(args: string[]): Promise<string>;
  /** `run --rm busybox true`. */
  runRm(name: string): string[];
  /** `run --rm busybox true` on the engine's default network, if it has one. */
  runRmNetworked?(name: string): string[];
  /** `run -d busybox COMMAND`. */
  runDetached(name: string, command: string[]): string[];
  /** `create busybox true`. */
  create(name: string): string[];
  /** `ps -a`. */
  ps(): string[];
  /** `exec NAME true`. */
  exec(name: string): string[];
  /** `logs NAME`, if the CLI has one. */
  logs?(name: string): string[];
  /** Blocks until the container exited, if the CLI can. */
  wait?(name: string): string[];
  /** `stop NAMES...` (one invocation). */
  stop(names: string[]): string[];
  /** `version`. */
  versionArgs(): string[];
  /** Removes the containers (forcibly, ignoring unknown names). */
  remove(names: string[]): Promise<void>;
  /** Removes every container it has. */
  removeAll(): Promise<void>;
  /** The daemon's pids (the daemon and its containerd); empty when it has no daemon. */
  daemonPids(): Promise<number[]>;
  /** A Moby API request, for peers that serve one (bulk set-up). */
  api?(method: string, path: string, body?: unknown): Promise<ApiAnswer>;
}

/** Options of {@link startPouch}. */
export interface PouchOptions {
  /** The pouch executable (`dist/pouch`); `deno run -A main.ts` of this checkout if absent. */
  executable?: string;
  /** Extra daemon flags. */
  args?: string[];
}

const root = new URL("../", import.meta.url).pathname;
const BUSYBOX = "busybox";
const CTR_IMAGE = "docker.io/library/busybox:latest";
const NO_NET = ["--network", "none"];

/** Splits `names` into invocations of at most 100 names. */
function chunks(names: string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < names.length; i += 100) out.push(names.slice(i, i + 100));
  return out;
}

/** The argument builders that pouch, the Docker CLI and podman share. */
function dockerLikeArgs() {
  return {
    runRm: (name: string) => ["run", "--rm", ...NO_NET, "--name", name, BUSYBOX, "true"],
    runRmNetworked: (name: string) => ["run", "--rm", "--name", name, BUSYBOX, "true"],
    runDetached: (name: string, command: string[]) => [
      "run",
      "-d",
      ...NO_NET,
      "--name",
      name,
      BUSYBOX,
      ...command,
    ],
    create: (name: string) => ["create", ...NO_NET, "--name", name, BUSYBOX, "true"],
    ps: () => ["ps", "-a"],
    exec: (name: string) => ["exec", name, "true"],
    logs: (name: string) => ["logs", name],
    wait: (name: string) => ["wait", name],
    stop: (names: string[]) => ["stop", ...names],
    versionArgs: () => ["version"],
  };
}

/** A CLI bound to its program, leading arguments and environment. */
function boundCli(program: string, prefix: string[], env: Record<string, string>) {
  return {
    time: (args: string[], timeoutMs?: number) =>
      time(program, [...prefix, ...args], env, timeoutMs),
    cli: (args: string[]) => output(program, [...prefix, ...args], env),
    quiet: (args: string[]) =>
      new Deno.Command(program, {
        args: [...prefix, ...args],
        env,
        stdout: "null",
        stderr: "null",
        signal: AbortSignal.timeout(60_000),
      }).output().then(() => {}, () => {}),
  };
}

/** A Moby API client on a unix socket. */
function mobyApi(socket: string) {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  const api = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const response = await fetch(`http://engine${path}`, {
      method,
      client,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    return { status: response.status, body: await response.text() };
  };
  const removeAll = async () => {
    const deadline = Date.now() + 120_000;
    const list = await api("GET", "/containers/json?all=1").catch(() => undefined);
    const ids = (JSON.parse(list?.body || "[]") as Array<{ Id: string }>).map((c) => c.Id);
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < ids.length && Date.now() < deadline) {
        await api("DELETE", `/containers/${ids[next++]}?force=1&v=1`).catch(() => {});
      }
    }));
  };
  return { api, removeAll, close: () => client.close() };
}

/** Polls `ready` every 100 ms until it answers true; throws after `timeoutMs`. */
async function until(ready: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!await ready().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Stops `child` with SIGTERM, then SIGKILL after `graceMs`. */
async function terminate(child: Deno.ChildProcess, graceMs: number): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    return; // Already gone.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, graceMs);
  await child.status;
  clearTimeout(timer);
}

/** Spawns a daemon with its stdout and stderr appended to `logPath`. */
async function spawnLogged(
  program: string,
  logPath: string,
  args: string[],
): Promise<Deno.ChildProcess> {
  const log = await Deno.open(logPath, { append: true, create: true });
  const child = new Deno.Command(program, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const pipe = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeTo(new WritableStream({ write: (chunk) => void log.writeSync(chunk) }))
      .catch(() => {});
  Promise.all([pipe(child.stdout), pipe(child.stderr)]).finally(() => log.close());
  return child;
}

/** Kills what is left under `dir`, unmounts, and removes it. */
async function scrub(dir: string): Promise<void> {
  await killUnder(dir);
  await unmountUnder(dir);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** A started pouch daemon: the `pouch` peer, and the containerd the `ctr` peer uses. */
export interface PouchPeer extends Peer {
  /** The daemon's containerd socket. */
  containerdSocket: string;
  /** The daemon's pid. */
  pid: number;
}

/** Starts a pouch daemon (its own containerd) in a temp dir. */
export async function startPouch(options: PouchOptions = {}): Promise<PouchPeer> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-" });
  const socket = `${dir}/pouchd.sock`;
  const program = options.executable ?? Deno.execPath();
  const prefix = options.executable ? [] : ["run", "-A", `${root}main.ts`];
  const bridge = `pb${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(`${dir}/config.json`, "{}");
  const child = await spawnLogged(program, `${dir}/daemon.log`, [
    ...prefix,
    "daemon",
    "--home-dir",
    `${dir}/home`,
    "-l",
    `unix://${socket}`,
    "--pidfile",
    `${dir}/pouch.pid`,
    "--config-file",
    `${dir}/config.json`,
    "--bridge-name",
    bridge,
    "--bip",
    `10.${100 + Math.floor(Math.random() * 140)}.${Math.floor(Math.random() * 250)}.1/24`,
    ...(options.args ?? []),
  ]);
  let exited = false;
  child.status.then(() => (exited = true));
  const moby = mobyApi(socket);
  const cli = boundCli(program, [...prefix, "-H", `unix://${socket}`], {});
  const dispose = async () => {
    await moby.removeAll();
    moby.close();
    await terminate(child, 20_000);
    await scrub(dir);
    await new Deno.Command("ip", { args: ["link", "del", bridge], stderr: "null" }).output();
  };
  try {
    await until(
      async () => {
        if (exited) throw new Error(`pouch daemon exited early; see ${dir}/daemon.log`);
        return (await moby.api("GET", "/_ping")).status === 200;
      },
      60_000,
      "pouch daemon",
    );
  } catch (err) {
    const text = await Deno.readTextFile(`${dir}/daemon.log`).catch(() => "");
    await dispose();
    throw new Error(`${(err as Error).message}\n${text.slice(-2000)}`);
  }
  const { Version, GitCommit } = JSON.parse((await moby.api("GET", "/version")).body);
  return {
    name: "pouch",
    dir,
    version: `pouch ${Version}${GitCommit ? ` (${GitCommit})` : ""}`,
    containerdSocket: `${dir}/home/containerd/containerd.sock`,
    pid: child.pid,
    ...cli,
    ...dockerLikeArgs(),
    remove: async (names) => {
      for (const part of chunks(names)) await cli.quiet(["rm", "-f", ...part]);
    },
    removeAll: moby.removeAll,
    daemonPids: async () => [child.pid, ...await childrenNamed(child.pid, "containerd")],
    api: moby.api,
    [Symbol.asyncDispose]: dispose,
  };
}

/**
 * The `ctr` peer, namespace `bench`, with busybox imported, on a containerd of its own started as
 * pouch starts its own (the same supervisor and config) in a temp dir: a containerd shared with
 * pouch would carry ctr's containers in the RSS measured for pouch.
 */
export async function startCtr(tarball: string): Promise<Peer> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "ctr-bench-" });
  let containerd: ContainerdProcess;
  try {
    containerd = await startContainerd({
      root: `${dir}/root`,
      state: `${dir}/state`,
      address: `${dir}/containerd.sock`,
      configPath: `${dir}/containerd.toml`,
    });
  } catch (err) {
    await scrub(dir);
    throw err;
  }
  const prefix = ["-a", containerd.address, "-n", "bench"];
  const cli = boundCli("ctr", prefix, {});
  await cli.cli(["images", "import", tarball]);
  const names = async () =>
    (await cli.cli(["containers", "ls", "-q"])).split("\n").filter((line) => line !== "");
  let execs = 0;
  const remove = async (list: string[]) => {
    for (const part of chunks(list)) {
      await cli.quiet(["tasks", "delete", "-f", ...part]);
      await cli.quiet(["containers", "delete", ...part]);
    }
  };
  const version = (await output("ctr", ["--version"])).trim();
  return {
    name: "ctr",
    dir,
    version,
    ...cli,
    runRm: (name) => ["run", "--rm", "--seccomp", CTR_IMAGE, name, "true"],
    runDetached: (name, command) => ["run", "-d", "--seccomp", CTR_IMAGE, name, ...command],
    create: (name) => ["containers", "create", CTR_IMAGE, name, "true"],
    ps: () => ["containers", "ls"],
    exec: (name) => ["tasks", "exec", "--exec-id", `e${execs++}`, name, "true"],
    // ctr has no stop: `tasks delete -f` kills with SIGKILL, waits and deletes the task.
    stop: (list) => ["tasks", "delete", "-f", ...list],
    versionArgs: () => ["version"],
    remove,
    removeAll: async () => await remove(await names()),
    daemonPids: () => Promise.resolve([containerd.pid]),
    [Symbol.asyncDispose]: async () => {
      await remove(await names().catch(() => []));
      await cli.quiet(["images", "rm", CTR_IMAGE]);
      await containerd.stop();
      await scrub(dir);
    },
  };
}

/** Starts dockerd (with the containerd it starts) in a temp dir, or answers why it cannot. */
export async function startDockerd(
  options: { insecureRegistry?: string } = {},
): Promise<Peer | string> {
  const dockerd = await which("dockerd");
  if (!dockerd) return "dockerd is not installed (apt-get install docker.io)";
  const docker = await which("docker");
  if (!docker) return "no docker CLI on PATH";
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-dockerd-" });
  const socket = `${dir}/docker.sock`;
  // A bridge of its own for its default network (dockerd makes only docker0 itself), without
  // iptables: its containers get a veth and an address, as pouch's and podman's do.
  const bridge = `pbd${crypto.randomUUID().slice(0, 8)}`;
  const subnet = `10.254.${Math.floor(Math.random() * 250)}`;
  await output("ip", ["link", "add", "name", bridge, "type", "bridge"]);
  await output("ip", ["addr", "add", `${subnet}.1/24`, "dev", bridge]);
  await output("ip", ["link", "set", "dev", bridge, "up"]);
  const child = await spawnLogged(dockerd, `${dir}/dockerd.log`, [
    "--data-root",
    `${dir}/root`,
    "--exec-root",
    `${dir}/exec`,
    "--pidfile",
    `${dir}/docker.pid`,
    "-H",
    `unix://${socket}`,
    "--bridge",
    bridge,
    "--iptables=false",
    "--ip-masq=false",
    ...(options.insecureRegistry ? ["--insecure-registry", options.insecureRegistry] : []),
  ]);
  let exited = false;
  child.status.then(() => (exited = true));
  const moby = mobyApi(socket);
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: `${dir}/config` };
  const cli = boundCli(docker, [], env);
  const dispose = async () => {
    await moby.removeAll();
    moby.close();
    await terminate(child, 20_000);
    await output("ip", ["link", "del", "dev", bridge]).catch(() => {});
    await scrub(dir);
  };
  try {
    await until(
      async () => {
        if (exited) throw new Error(`dockerd exited early; see ${dir}/dockerd.log`);
        return (await moby.api("GET", "/_ping")).status === 200;
      },
      60_000,
      "dockerd",
    );
  } catch (err) {
    const text = await Deno.readTextFile(`${dir}/dockerd.log`).catch(() => "");
    await dispose();
    return `${(err as Error).message}: ${text.slice(-500)}`;
  }
  const server = JSON.parse((await moby.api("GET", "/version")).body).Version as string;
  const client = (await output(docker, ["--version"])).trim();
  return {
    name: "dockerd",
    dir,
    version: `dockerd ${server}; ${client}`,
    ...cli,
    ...dockerLikeArgs(),
    remove: async (names) => {
      for (const part of chunks(names)) await cli.quiet(["rm", "-f", ...part]);
    },
    removeAll: moby.removeAll,
    daemonPids: async () => [child.pid, ...await childrenNamed(child.pid, "containerd")],
    api: moby.api,
    [Symbol.asyncDispose]: dispose,
  };
}

/**
 * Prepares podman in a temp dir, or answers why it cannot. `nproc` stays at 32768: conmon runs
 * with that hard limit here, and runc refuses anything above it.
 */
export async function startPodman(): Promise<Peer | string> {
  const podman = await which("podman");
  if (!podman) return "podman is not installed (apt-get install podman)";
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-podman-" });
  const conf = `${dir}/containers.conf`;
  await Deno.mkdir(`${dir}/net`);
  await Deno.writeTextFile(
    conf,
    [
      "[containers]",
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      'log_driver = "k8s-file"',
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${dir}/events.log"`,
      "[network]",
      `network_config_dir = "${dir}/net"`,
      "",
    ].join("\n"),
  );
  const hadLock = await Deno.stat("/dev/shm/libpod_lock").then(() => true, () => false);
  // The default network's bridge, which podman makes at the first networked container and
  // leaves behind; removed afterwards unless it was there before.
  const hadBridge = await Deno.stat("/sys/class/net/cni-podman0").then(() => true, () => false);
  const prefix = ["--root", `${dir}/root`, "--runroot", `${dir}/run`, "--tmpdir", `${dir}/tmp`];
  const cli = boundCli(podman, prefix, { CONTAINERS_CONF: conf });
  const removeAll = () => cli.quiet(["rm", "-a", "-f", "-t", "0"]);
  const dispose = async () => {
    await removeAll();
    await cli.quiet(["rmi", "-a", "-f"]);
    await scrub(dir);
    if (!hadLock) await Deno.remove("/dev/shm/libpod_lock").catch(() => {});
    if (!hadBridge) await output("ip", ["link", "del", "dev", "cni-podman0"]).catch(() => {});
  };
  let version: string;
  try {
    version = (await cli.cli(["--version"])).trim();
    await cli.cli(["info"]);
  } catch (err) {
    await dispose();
    return `podman does not work here: ${(err as Error).message.slice(0, 300)}`;
  }
  return {
    name: "podman",
    dir,
    version,
    ...cli,
    ...dockerLikeArgs(),
    remove: async (names) => {
      for (const part of chunks(names)) await cli.quiet(["rm", "-f", "-t", "0", ...part]);
    },
    removeAll,
    daemonPids: () => Promise.resolve([]),
    [Symbol.asyncDispose]: dispose,
  };
}
