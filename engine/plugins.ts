/**
 * Hook plugins, as PouchContainer had them (its `hookplugins`): site-specific logic that runs at
 * fixed points of the daemon without forking its code.
 *
 * ## Where plugins come from
 * Every `*.ts`, `*.js` or executable file of `--plugin-dir` (default `/etc/pouch/plugins`), in
 * name order, then each path of `--plugin PATH` (config file key `plugins`). Other files (Docker
 * volume plugins' `*.spec`, `*.json`, `*.sock`) are left alone. A plugin that fails to load is
 * skipped with an error in the daemon's log; the daemon starts without it.
 *
 * ## Deno modules
 * A module default-exports a {@link Plugin}: an object with optional groups of optional hooks.
 * See `contrib/plugins/example.ts`.
 *
 * ```ts
 * export default {
 *   name: "site",
 *   container: {
 *     beforeCreate(request) {
 *       request.Labels = { ...request.Labels, site: "lab" };
 *       return request;
 *     },
 *   },
 *   api: { routes(app) { app.get("/plugins/site/ping", (c) => c.json({ ok: true })); } },
 * };
 * ```
 *
 * ## Executables
 * Called as `PLUGIN HOOK` (`container.beforeCreate`, ...) with a JSON document on stdin holding
 * the hook's arguments (`{"request": {...}, "info": {"name": "web"}}`, see
 * {@link HookPayloads}); they may answer a JSON object on stdout whose fields replace the
 * document's (`{"request": {...}}`), or nothing. Exit 0 is success, 2 refuses the operation as the client's fault (400), anything else
 * fails it (500); stderr is the message. At load, `PLUGIN hooks` may answer the JSON list of
 * hooks the executable has; without an answer it is called for every hook. Executables have no
 * API hooks.
 *
 * ## Failures
 * A hook that throws (or an executable that fails, or either running past the timeout, 30 s):
 * - `container.beforeCreate`, `container.beforeStart`, `volume.beforeVolumeCreate` and
 *   `cri.beforeCriCreateContainer` fail the operation, with a message naming the plugin:
 *   400 when the error says the request is at fault (an error with `status: 400`, or exit 2),
 *   500 otherwise. Nothing is created.
 * - `daemon.beforeStart`, `daemon.beforeStop` and `container.afterStop` are logged; the daemon
 *   goes on.
 * - API handlers a plugin added or wrapped fail that request with 500 (or the status of an
 *   error with one); `api.routes` throwing at load leaves its routes out.
 *
 * Hooks run in load order; a hook that changes its argument hands the change to the next one.
 * Modules run inside the daemon's process: one that calls `Deno.exit` or leaves a rejected
 * promise unhandled still stops it, so logic that is not trusted belongs in an executable.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { ApiEnv } from "./api/http.ts";
import type { CreateRequest } from "./container.ts";
import { EngineError, invalidArgument, messageOf, systemError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { ContainerConfig, HostConfig } from "./types.ts";

/** A value or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** What daemon hooks are told. */
export interface DaemonHookInfo {
  /** The daemon's home directory. */
  homeDir: string;
  /** The API addresses. */
  listen: string[];
  pid: number;
}

/** What container hooks after create are told (a copy: changing it changes nothing). */
export interface ContainerHookInfo {
  id: string;
  name: string;
  image: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  /** `afterStop`: the exit code. */
  exitCode?: number;
}

/** A volume about to be created: the hook may change its driver and options. */
export interface VolumeHookRequest {
  Name: string;
  Driver: string;
  DriverOpts: Record<string, string>;
  Labels: Record<string, string>;
}

/** What `cri.beforeCriCreateContainer` is told besides the create request. */
export interface CriHookInfo {
  /** The pod sandbox the container joins. */
  sandboxId: string;
  /** The container's name as pouch names it (`k8s_...`). */
  name?: string;
}

/**
 * A plugin: what a plugin module default-exports. Every group and hook is optional. A hook that
 * changes its first argument may change it in place or return the changed value.
 */
export interface Plugin {
  /** The name in logs and errors; default the file name without its extension. */
  name?: string;
  daemon?: {
    /** Before the daemon starts containerd and serves (after reading its config). */
    beforeStart?(info: DaemonHookInfo): Awaitable<void>;
    /** When the daemon was told to stop, before it stops serving. */
    beforeStop?(info: DaemonHookInfo): Awaitable<void>;
  };
  container?: {
    /** Before a container is created (API and CRI): may change the config and host config. */
    beforeCreate?(
      request: CreateRequest,
      info: { name?: string },
    ): Awaitable<CreateRequest | void>;
    /** Before each start of a container (also restarts by its restart policy). */
    beforeStart?(container: ContainerHookInfo): Awaitable<void>;
    /** After a container's process exited (stop, kill or its own exit). */
    afterStop?(container: ContainerHookInfo): Awaitable<void>;
  };
  volume?: {
    /** Before a volume is created (explicitly or by `run -v NAME:/path`). */
    beforeVolumeCreate?(request: VolumeHookRequest): Awaitable<VolumeHookRequest | void>;
  };
  cri?: {
    /** Before the CRI creates a container in a pod: may change the create request. */
    beforeCriCreateContainer?(
      request: CreateRequest,
      info: CriHookInfo,
    ): Awaitable<CreateRequest | void>;
  };
  api?: {
    /** Adds routes (at `/` and `/v1.NN/`); one that the API has too replaces it. */
    routes?(app: Hono<ApiEnv>): void;
    /** Middleware around the API's handlers of `method` and `path` (Hono's path syntax). */
    wrap?: Array<{ method: string; path: string; handler: MiddlewareHandler<ApiEnv> }>;
  };
}

/** The hooks an executable can have, and the document each gets on stdin. */
export interface HookPayloads {
  "daemon.beforeStart": { daemon: DaemonHookInfo };
  "daemon.beforeStop": { daemon: DaemonHookInfo };
  "container.beforeCreate": { request: CreateRequest; info: { name?: string } };
  "container.beforeStart": { container: ContainerHookInfo };
  "container.afterStop": { container: ContainerHookInfo };
  "volume.beforeVolumeCreate": { volume: VolumeHookRequest };
  "cri.beforeCriCreateContainer": { request: CreateRequest; info: CriHookInfo };
}

/** A hook's name, `group.hook`. */
export type HookName = keyof HookPayloads;

const HOOKS: HookName[] = [
  "daemon.beforeStart",
  "daemon.beforeStop",
  "container.beforeCreate",
  "container.beforeStart",
  "container.afterStop",
  "volume.beforeVolumeCreate",
  "cri.beforeCriCreateContainer",
];

/** A loaded plugin: a uniform caller over modules and executables. */
export interface LoadedPlugin {
  name: string;
  /** The module's object; undefined for an executable. */
  module?: Plugin;
  has(hook: HookName): boolean;
  /** Runs `hook`; resolves with the (possibly changed) payload. */
  call<H extends HookName>(hook: H, payload: HookPayloads[H]): Promise<HookPayloads[H]>;
}

/** Options of {@link loadPlugins}. */
export interface LoadPluginsOptions {
  /** The plugin directory; a missing one holds no plugins. */
  dir?: string;
  /** Further plugin files. */
  paths?: string[];
  log: Logger;
  /** Deadline of each hook call; default 30 s. */
  timeoutMs?: number;
}

/** Loads the plugins of `options.dir` and `options.paths`; never throws for a bad plugin. */
export async function loadPlugins(options: LoadPluginsOptions): Promise<PluginManager> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const files: string[] = [];
  if (options.dir) {
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(options.dir)) {
        if (entry.isFile || entry.isSymlink) names.push(entry.name);
      }
      for (const name of names.sort()) {
        const path = `${options.dir}/${name}`;
        if (/\.(ts|js|mjs)$/.test(name) || await isExecutable(path)) files.push(path);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        options.log.error("reading the plugin directory failed", {
          dir: options.dir,
          error: messageOf(err),
        });
      }
    }
  }
  files.push(...(options.paths ?? []));
  const plugins: LoadedPlugin[] = [];
  for (const path of files) {
    try {
      const plugin = /\.(ts|js|mjs)$/.test(path)
        ? await loadModule(path)
        : await loadExecutable(path, timeoutMs);
      plugins.push(plugin);
      options.log.info("plugin loaded", { name: plugin.name, path });
    } catch (err) {
      options.log.error("plugin skipped: it failed to load", { path, error: messageOf(err) });
    }
  }
  return new PluginManager(plugins, { log: options.log, timeoutMs });
}

async function isExecutable(path: string): Promise<boolean> {
  const info = await Deno.stat(path).catch(() => null);
  return info !== null && info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1).replace(/\.(ts|js|mjs)$/, "");
}

/** The file: URL of an absolute path, each segment percent-encoded (`#`, `?`, `%`, spaces). */
function fileUrlOf(absolute: string): string {
  return `file://${absolute.split("/").map(encodeURIComponent).join("/")}`;
}

async function loadModule(path: string): Promise<LoadedPlugin> {
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  const imported = await import(fileUrlOf(absolute));
  const plugin = imported.default as Plugin | undefined;
  if (typeof plugin !== "object" || plugin === null) {
    throw new Error("the module has no default export of a plugin object");
  }
  const name = typeof plugin.name === "string" && plugin.name ? plugin.name : baseName(path);
  const fn = (hook: HookName) => {
    const [group, method] = hook.split(".") as [string, string];
    const target = (plugin as Record<string, Record<string, unknown> | undefined>)[group];
    const value = target?.[method];
    return typeof value === "function" ? value.bind(target) : undefined;
  };
  return {
    name,
    module: plugin,
    has: (hook) => fn(hook) !== undefined,
    async call(hook, payload) {
      const hookFn = fn(hook)!;
      const out = { ...payload } as Record<string, unknown>;
      // The first field is the value hooks may change; the others are context.
      const [key, ...rest] = Object.keys(payload);
      const result = await hookFn(out[key!], ...rest.map((k) => out[k]));
      if (result !== undefined && result !== null) out[key!] = result;
      return out as typeof payload;
    },
  };
}

async function loadExecutable(path: string, timeoutMs: number): Promise<LoadedPlugin> {
  if (!(await isExecutable(path))) throw new Error(`${path} is neither a module nor executable`);
  let hooks = new Set<HookName>(HOOKS);
  const listed = await runExecutable(path, "hooks", { input: "{}", timeoutMs }).catch(() => null);
  if (listed && listed.code === 0) {
    try {
      const names = JSON.parse(listed.stdout);
      if (Array.isArray(names)) hooks = new Set(names.filter((n) => HOOKS.includes(n)));
    } catch {
      // No list: the executable gets every hook.
    }
  }
  const name = baseName(path);
  return {
    name,
    has: (hook) => hooks.has(hook),
    async call(hook, payload) {
      const result = await runExecutable(path, hook, {
        input: JSON.stringify(payload),
        timeoutMs,
      });
      if (result.code !== 0) {
        const message = result.stderr.trim() || `exited with code ${result.code}`;
        throw Object.assign(new Error(message), { status: result.code === 2 ? 400 : 500 });
      }
      if (result.stdout.trim() === "") return payload;
      let answer: unknown;
      try {
        answer = JSON.parse(result.stdout);
      } catch {
        throw new Error(`answered no JSON: ${result.stdout.slice(0, 200)}`);
      }
      if (typeof answer !== "object" || answer === null || Array.isArray(answer)) {
        throw new Error("answered JSON that is not an object");
      }
      return { ...payload, ...answer };
    },
  };
}

async function runExecutable(
  path: string,
  arg: string,
  options: { input: string; timeoutMs: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(path, {
    args: [arg],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, options.timeoutMs);
  try {
    const writer = child.stdin.getWriter();
    // An executable that does not read its stdin must not fail the call.
    await writer.write(new TextEncoder().encode(options.input)).catch(() => {});
    await writer.close().catch(() => {});
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.signal === "SIGKILL" ? -1 : output.code,
      stdout: decoder.decode(output.stdout),
      stderr: output.signal === "SIGKILL"
        ? `killed after ${options.timeoutMs / 1000}s`
        : decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the loaded plugins' hooks; see the module documentation for what each failure does. */
export class PluginManager {
  readonly #plugins: LoadedPlugin[];
  readonly #log: Logger;
  readonly #timeoutMs: number;

  /** Use {@link loadPlugins}; this wraps plugins already loaded. */
  constructor(plugins: LoadedPlugin[], options: { log: Logger; timeoutMs?: number }) {
    this.#plugins = plugins;
    this.#log = options.log;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** The loaded plugins' names, in load order. */
  get names(): string[] {
    return this.#plugins.map((p) => p.name);
  }

  /** `daemon.beforeStart` of every plugin; failures are logged. */
  async daemonBeforeStart(info: DaemonHookInfo): Promise<void> {
    await this.#notify("daemon.beforeStart", { daemon: info });
  }

  /** `daemon.beforeStop` of every plugin; failures are logged. */
  async daemonBeforeStop(info: DaemonHookInfo): Promise<void> {
    await this.#notify("daemon.beforeStop", { daemon: info });
  }

  /** `container.beforeCreate`: the request as the plugins changed it; throws naming a plugin. */
  async beforeCreate(request: CreateRequest, info: { name?: string } = {}): Promise<CreateRequest> {
    const payload = await this.#run("container.beforeCreate", {
      request: structuredClone(request),
      info: { name: info.name },
    });
    return payload.request;
  }

  /** `container.beforeStart`; throws naming the plugin that failed. */
  async beforeStart(container: ContainerHookInfo): Promise<void> {
    await this.#run("container.beforeStart", { container: hookView(container) });
  }

  /** `container.afterStop`; failures are logged. */
  async afterStop(container: ContainerHookInfo): Promise<void> {
    await this.#notify("container.afterStop", { container: hookView(container) });
  }

  /** `volume.beforeVolumeCreate`: the volume as the plugins changed it; throws naming a plugin. */
  async beforeVolumeCreate(volume: VolumeHookRequest): Promise<VolumeHookRequest> {
    return (await this.#run("volume.beforeVolumeCreate", { volume: structuredClone(volume) }))
      .volume;
  }

  /**
   * `cri.beforeCriCreateContainer`, for the CRI's CreateContainer to call before it creates the
   * container: the request as the plugins changed it; throws naming a plugin.
   */
  async beforeCriCreateContainer(
    request: CreateRequest,
    info: CriHookInfo,
  ): Promise<CreateRequest> {
    return (await this.#run("cri.beforeCriCreateContainer", {
      request: structuredClone(request),
      info,
    })).request;
  }

  /**
   * Installs the API hooks on `app` (the app every route is mounted on) at both the bare paths
   * and under `options.versionPrefix`; call it before the API's routes are mounted, so that
   * wrappers run around them and added routes win over theirs.
   */
  installApi(app: Hono<ApiEnv>, options: { versionPrefix: string }): void {
    for (const plugin of this.#plugins) {
      const api = plugin.module?.api;
      if (!api) continue;
      for (const wrap of api.wrap ?? []) {
        const paths = [wrap.path, `${options.versionPrefix}${wrap.path}`];
        app.on(wrap.method.toUpperCase(), paths, this.#guard(plugin.name, wrap.handler));
      }
      if (!api.routes) continue;
      const routes = new Hono<ApiEnv>();
      try {
        api.routes(routes);
      } catch (err) {
        this.#log.error("plugin api.routes failed: its routes are left out", {
          plugin: plugin.name,
          error: messageOf(err),
        });
        continue;
      }
      app.route(options.versionPrefix, routes);
      app.route("/", routes);
    }
  }

  /** A plugin's middleware whose own errors (not those of the handlers it wraps) name it. */
  #guard(name: string, handler: MiddlewareHandler<ApiEnv>): MiddlewareHandler<ApiEnv> {
    return async (c, next) => {
      let inner = false;
      const wrappedNext = async () => {
        try {
          await next();
        } catch (err) {
          inner = true;
          throw err;
        }
      };
      try {
        return await handler(c, wrappedNext);
      } catch (err) {
        if (inner) throw err;
        throw pluginError(name, "api", err);
      }
    };
  }

  async #run<H extends HookName>(hook: H, payload: HookPayloads[H]): Promise<HookPayloads[H]> {
    let current = payload;
    for (const plugin of this.#plugins) {
      if (!plugin.has(hook)) continue;
      try {
        current = await this.#timed(plugin.call(hook, current));
      } catch (err) {
        const error = pluginError(plugin.name, hook, err);
        this.#log.error("plugin hook failed", { plugin: plugin.name, hook, error: error.message });
        throw error;
      }
    }
    return current;
  }

  async #notify<H extends HookName>(hook: H, payload: HookPayloads[H]): Promise<void> {
    for (const plugin of this.#plugins) {
      if (!plugin.has(hook)) continue;
      try {
        await this.#timed(plugin.call(hook, payload));
      } catch (err) {
        this.#log.error("plugin hook failed", { plugin: plugin.name, hook, error: messageOf(err) });
      }
    }
  }

  async #timed<T>(promise: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`did not finish within ${this.#timeoutMs / 1000}s`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A copy of what hooks see of a container (callers may pass the whole record). */
function hookView(container: ContainerHookInfo): ContainerHookInfo {
  const { id, name, image, config, hostConfig, exitCode } = container;
  return structuredClone({ id, name, image, config, hostConfig, exitCode });
}

/** An error of plugin `name`'s `hook`: 400 when the plugin says the request is at fault. */
function pluginError(name: string, hook: string, err: unknown): EngineError {
  const message = `plugin ${name}: ${hook}: ${messageOf(err)}`;
  const status = (err as { status?: unknown })?.status;
  const invalid = status === 400 ||
    (err instanceof EngineError && err.kind === "InvalidArgument");
  return invalid ? invalidArgument(message, err) : systemError(message, err);
}
