/**
 * A Docker volume plugin for the tests: it serves Docker's volume plugin protocol on a unix
 * socket and keeps each volume as a directory under a root directory it is given.
 *
 *     deno run -A testdata/volume_plugin.ts --socket DIR/testplugin.sock --root DIR/volumes \
 *       [--log FILE] [--hang METHOD]... [--garbage METHOD]... [--implements NAME]...
 *
 * `--log` appends one JSON line per call (`{"method", "body"}`); `--hang VolumeDriver.Create`
 * never answers that method; `--garbage METHOD` answers it with a body that is not JSON;
 * `--implements` replaces what `/Plugin.Activate` says (`VolumeDriver` by default). A `fail`
 * option at create answers `Err`. Unit tests use {@link pluginHandler} in-process.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** Options of {@link pluginHandler}. */
export interface PluginHandlerOptions {
  /** Methods that never answer (`VolumeDriver.Create`). */
  hang?: string[];
  /** Methods answered with a body that is not JSON. */
  garbage?: string[];
  /** What `/Plugin.Activate` answers in `Implements`. */
  implements?: string[];
  /** Called with every request, before it is answered. */
  onCall?: (method: string, body: Record<string, unknown>) => void;
  /** Ends the hanging calls (so that an in-process server can shut down). */
  signal?: AbortSignal;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The plugin's request handler, keeping volumes as directories under `root`. */
export function pluginHandler(
  root: string,
  options: PluginHandlerOptions = {},
): (request: Request) => Promise<Response> {
  // Which containers mounted each volume.
  const mounts = new Map<string, Set<string>>();
  const answer = (body: unknown) =>
    new Response(JSON.stringify(body), {
      headers: { "Content-Type": "application/vnd.docker.plugins.v1.2+json" },
    });
  return async (request) => {
    const method = new URL(request.url).pathname.slice(1);
    const text = await request.text();
    const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
    options.onCall?.(method, body);
    if (options.hang?.includes(method)) {
      await new Promise<void>((resolve) =>
        options.signal?.addEventListener("abort", () => resolve())
      );
      return new Response("released", { status: 503 });
    }
    if (options.garbage?.includes(method)) return new Response("this is not JSON {");
    const name = String(body.Name ?? "");
    const dir = `${root}/${name}`;
    const valid = NAME.test(name) && !name.includes("..");
    const present = valid && await Deno.stat(dir).then(() => true, () => false);
    switch (method) {
      case "Plugin.Activate":
        return answer({ Implements: options.implements ?? ["VolumeDriver"] });
      case "VolumeDriver.Capabilities":
        return answer({ Capabilities: { Scope: "local" } });
      case "VolumeDriver.Create": {
        if (!valid) return answer({ Err: `invalid volume name ${JSON.stringify(name)}` });
        const opts = (body.Opts ?? {}) as Record<string, string>;
        if (opts.fail) return answer({ Err: `told to fail: ${opts.fail}` });
        await Deno.mkdir(dir, { recursive: true });
        return answer({});
      }
      case "VolumeDriver.Remove":
        if (!present) return answer({ Err: `no such volume: ${name}` });
        if ((mounts.get(name)?.size ?? 0) > 0) return answer({ Err: `volume ${name} is mounted` });
        await Deno.remove(dir, { recursive: true });
        mounts.delete(name);
        return answer({});
      case "VolumeDriver.Mount": {
        if (!present) return answer({ Err: `no such volume: ${name}` });
        const ids = mounts.get(name) ?? new Set();
        ids.add(String(body.ID ?? ""));
        mounts.set(name, ids);
        return answer({ Mountpoint: dir });
      }
      case "VolumeDriver.Unmount":
        mounts.get(name)?.delete(String(body.ID ?? ""));
        return answer({});
      case "VolumeDriver.Path":
        return answer(present ? { Mountpoint: dir } : { Err: `no such volume: ${name}` });
      case "VolumeDriver.Get":
        if (!present) return answer({ Err: `no such volume: ${name}` });
        return answer({
          Volume: {
            Name: name,
            Mountpoint: dir,
            Status: { mountedBy: [...(mounts.get(name) ?? [])].sort() },
          },
        });
      case "VolumeDriver.List": {
        const names = await Array.fromAsync(Deno.readDir(root), (e) => e.name);
        return answer({
          Volumes: names.sort().map((n) => ({ Name: n, Mountpoint: `${root}/${n}` })),
        });
      }
      default:
        return new Response(`404 page not found: ${method}`, { status: 404 });
    }
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      socket: { type: "string" },
      root: { type: "string" },
      log: { type: "string" },
      hang: { type: "string", multiple: true },
      garbage: { type: "string", multiple: true },
      implements: { type: "string", multiple: true },
    },
  });
  if (!values.socket || !values.root) throw new Error("--socket and --root are required");
  await Deno.mkdir(values.root, { recursive: true });
  const log = values.log;
  const handler = pluginHandler(values.root, {
    hang: values.hang,
    garbage: values.garbage,
    implements: values.implements,
    onCall: (method, body) => {
      if (log) {
        Deno.writeTextFileSync(log, JSON.stringify({ method, body }) + "\n", { append: true });
      }
    },
  });
  await Deno.remove(values.socket).catch(() => {});
  const server = Deno.serve(
    { path: values.socket, transport: "unix", onListen: () => {} },
    handler,
  );
  // A hanging call would keep a graceful shutdown waiting: just go.
  const stop = () => Deno.exit(0);
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
}
