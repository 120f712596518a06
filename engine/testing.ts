/**
 * Helpers for the project's integration tests: a throw-away containerd in a temp directory
 * (`await using ctd = await withTempContainerd()`) and a polling helper instead of sleeps.
 *
 * @module
 */

import { connectContainerd, type Containerd } from "./containerd.ts";
import { type ContainerdProcess, startContainerd } from "./supervisor.ts";

/** A containerd of its own for one test, with a connected client. */
export interface TempContainerd {
  /** The temp directory holding root, state, sockets and config. */
  dir: string;
  /** containerd's gRPC socket path. */
  address: string;
  /** A client in the test's namespace. */
  client: Containerd;
  /** The supervised containerd process. */
  process: ContainerdProcess;
  /** containerd's log lines so far (for failure messages). */
  logs: string[];
}

/** Options of {@link withTempContainerd}. */
export interface TempContainerdOptions {
  /** The client's namespace; `default` when omitted. */
  namespace?: string;
  /** Run containerd at debug log level. */
  debug?: boolean;
}

/**
 * Starts containerd in a fresh directory under /tmp (short, for the socket path limit) and
 * connects a client. Disposing it kills and deletes the tasks left in the client's namespace,
 * closes the client, stops containerd, unmounts whatever is still mounted under the directory
 * and removes it.
 */
export async function withTempContainerd(
  options: TempContainerdOptions = {},
): Promise<TempContainerd & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-ctd-" });
  const address = `${dir}/containerd.sock`;
  const logs: string[] = [];
  let process: ContainerdProcess;
  try {
    process = await startContainerd({
      root: `${dir}/root`,
      state: `${dir}/state`,
      address,
      configPath: `${dir}/config.toml`,
      debug: options.debug,
      log: (line) => logs.push(line),
    });
  } catch (err) {
    await removeTempDir(dir);
    throw new Error(`containerd did not start; its log:\n${logs.join("\n")}`, { cause: err });
  }
  const client = connectContainerd(address, { namespace: options.namespace });
  return {
    dir,
    address,
    client,
    process,
    logs,
    async [Symbol.asyncDispose]() {
      await deleteTasks(client);
      client.close();
      await process.stop();
      await removeTempDir(dir);
    },
  };
}

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long; 10 s by default. */
  timeoutMs?: number;
  /** Time between two checks; 50 ms by default. */
  intervalMs?: number;
  /** The error message on timeout. */
  message?: string;
}

/** Polls `predicate` until it returns true; rejects when the timeout passes first. */
export async function waitFor(
  predicate: () => Promise<boolean> | boolean,
  options: WaitForOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() >= deadline) {
      throw new Error(options.message ?? `condition not met within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

/** Kills and deletes every task of the client's namespace, so that no shim outlives the test. */
async function deleteTasks(client: Containerd): Promise<void> {
  let tasks;
  try {
    tasks = await client.tasks.list();
  } catch {
    return;
  }
  for (const task of tasks) {
    try {
      if (task.status !== "stopped" && task.status !== "created") {
        await client.tasks.kill(task.containerId, 9, { all: true });
        await waitFor(async () => (await client.tasks.get(task.containerId)).status === "stopped", {
          timeoutMs: 5_000,
        });
      }
      await client.tasks.delete(task.containerId);
    } catch {
      // Best effort: the directory cleanup below still runs.
    }
  }
}

/** Unmounts everything under `dir` (deepest first) and removes it. */
async function removeTempDir(dir: string): Promise<void> {
  for (const mountPoint of (await mountPointsUnder(dir)).reverse()) {
    await new Deno.Command("umount", { args: ["-l", mountPoint], stderr: "null" }).output();
  }
  await Deno.remove(dir, { recursive: true });
}

/** Mount points at or below `dir`, in the order of /proc/self/mountinfo. */
async function mountPointsUnder(dir: string): Promise<string[]> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  const points: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    const mountPoint = field.replace(/\\([0-7]{3})/g, (_, octal) => {
      return String.fromCharCode(parseInt(octal, 8));
    });
    if (mountPoint === dir || mountPoint.startsWith(`${dir}/`)) points.push(mountPoint);
  }
  return points;
}
