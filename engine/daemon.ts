/**
 * `pouch daemon`: builds the daemon's parts in order (config → containerd → store → images →
 * containers → HTTP API), serves until SIGTERM or SIGINT, then stops them in reverse order.
 * Containers keep running under their shims while the daemon is down.
 *
 * @module
 */
import { createApi } from "./api/mod.ts";
import { ContainerFiles } from "./archive.ts";
import { DiskUsage } from "./disk_usage.ts";
import { DAEMON_USAGE, type DaemonConfig, loadConfig } from "./config.ts";
import { ContainerManager } from "./container.ts";
import { connectContainerd, type Containerd } from "./containerd.ts";
import { messageOf } from "./errors.ts";
import { EventBus, withImageEvents } from "./events.ts";
import { ExecManager } from "./exec.ts";
import { ImageManager } from "./image.ts";
import { Logger } from "./log.ts";
import { LxcfsManager } from "./lxcfs.ts";
import { loadPlugins } from "./plugins.ts";
import { lockHome } from "./lock.ts";
import { startMemoryReclaimer } from "./memory.ts";
import { DaemonMetrics } from "./metrics.ts";
import { claimNotifySocket, notifyManager } from "./notify.ts";
import { reloadOnSighup } from "./reload.ts";
import { VERSION } from "./version.ts";
import { RegistryClient } from "./registry.ts";
import { serveApi } from "./server.ts";
import { ContainerMonitor } from "./stats.ts";
import { Store } from "./store.ts";
import { type ContainerdProcess, startContainerd } from "./supervisor.ts";
import { SystemInfo } from "./system.ts";
import { LocalDriver, PluginRegistry, TmpfsDriver, VolumeManager } from "../volume/mod.ts";
import { NetworkManager } from "../network/mod.ts";

const encoder = new TextEncoder();

/** Runs the daemon with `args` (the flags after `daemon`); resolves with the exit code. */
export async function runDaemon(args: string[]): Promise<number> {
  let config: DaemonConfig | "help";
  try {
    config = await loadConfig(args);
  } catch (err) {
    Deno.stderr.writeSync(encoder.encode(`pouch daemon: ${messageOf(err)}\n${DAEMON_USAGE}`));
    return 2;
  }
  if (config === "help") {
    Deno.stdout.writeSync(encoder.encode(DAEMON_USAGE));
    return 0;
  }
  claimNotifySocket();
  const log = new Logger(config.debug ? "debug" : config.logLevel);
  try {
    return await serve(config, { log, args });
  } catch (err) {
    log.error("daemon failed", { error: messageOf(err) });
    return 1;
  }
}

async function serve(
  config: DaemonConfig,
  { log, args }: { log: Logger; args: string[] },
): Promise<number> {
  const home = config.homeDir;
  await Deno.mkdir(home, { recursive: true, mode: 0o711 });
  // One daemon per home: a second one stops here, before touching anything.
  const lock = await lockHome(home);
  await writePidfile(config.pidfile);
  const cleanup: Array<() => Promise<void> | void> = [
    () => lock.release(),
    () => Deno.remove(config.pidfile).catch(() => {}),
  ];
  const shutdown = Promise.withResolvers<string>();
  const onSignal = (name: string) => () => shutdown.resolve(name);
  const onTerm = onSignal("SIGTERM");
  const onInt = onSignal("SIGINT");
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  cleanup.push(() => {
    Deno.removeSignalListener("SIGTERM", onTerm);
    Deno.removeSignalListener("SIGINT", onInt);
  });

  try {
    // Hook plugins load first: their daemon.beforeStart runs before anything starts.
    const hookPlugins = await loadPlugins({ dir: config.pluginDir, paths: config.plugins, log });
    const daemonInfo = { homeDir: home, listen: config.listen, pid: Deno.pid };
    await hookPlugins.daemonBeforeStart(daemonInfo);
    let address = config.containerd.replace(/^unix:\/\//, "");
    let supervised: ContainerdProcess | undefined;
    if (!address) {
      const dir = `${home}/containerd`;
      await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
      const containerd = await startContainerd({
        path: config.containerdPath,
        root: `${dir}/root`,
        state: `${dir}/state`,
        address: `${dir}/containerd.sock`,
        configPath: `${dir}/config.toml`,
        debug: config.debug,
        log: (line) => log.debug("containerd", { line }),
        onRestart: () => log.warn("containerd died and was restarted"),
      });
      cleanup.push(() => containerd.stop());
      supervised = containerd;
      address = containerd.address;
      log.info("containerd started", { pid: containerd.pid, address });
    }
    const metrics = new DaemonMetrics({
      containerStates: () => manager.containers?.list().map((c) => c.state.Status) ?? [],
      info: {
        version: VERSION,
        storage_driver: config.snapshotter,
        default_runtime: config.defaultRuntime,
      },
    });
    const client: Containerd = connectContainerd(address, {
      namespace: config.namespace,
      onCall: (call, failed) => metrics.containerdCall(call, failed),
    });
    cleanup.push(() => client.close());
    await client.namespaces.ensure(config.namespace);

    const events = new EventBus();
    const store = new Store(`${home}/meta.db`);
    cleanup.push(() => store.close());
    const volumeRoot = `${home}/volumes`;
    // Docker volume plugins are found by name when a volume names a driver not built in.
    const plugins = new PluginRegistry({
      dirs: config.volumePluginDirs,
      timeoutMs: config.volumePluginTimeoutMs,
    });
    const volumes = new VolumeManager({
      store,
      drivers: [new LocalDriver({ root: volumeRoot }), new TmpfsDriver({ root: volumeRoot })],
      resolveDriver: (name) => plugins.resolve(name),
      events,
      beforeCreate: (request) => hookPlugins.beforeVolumeCreate(request),
    });
    // The container manager and the network manager ask each other: wired just below.
    const manager: { containers?: ContainerManager } = {};
    const networks = new NetworkManager({
      store,
      home,
      bridge: {
        name: config.bridgeName,
        bip: config.bip,
        fixedCidr: config.fixedCidr || undefined,
        defaultGateway: config.defaultGateway || undefined,
      },
      mtu: config.mtu,
      iptables: config.iptables,
      ipForward: config.ipForward,
      cniBinDirs: config.cniBinDirs,
      containers: () => {
        const containers = manager.containers;
        if (!containers) return undefined;
        return {
          resolve: (ref) => {
            const c = containers.get(ref);
            return {
              id: c.id,
              name: c.name,
              running: c.state.Status === "running" || c.state.Status === "paused",
            };
          },
          nameOf: (id) => containers.list().find((c) => c.id === id)?.name,
        };
      },
      warn: (message, fields) => log.warn(message, fields),
    });
    await networks.init();
    // Bridges no container uses go last, after the containers stopped being watched.
    cleanup.push(() => networks.close());
    const registry = new RegistryClient({
      mirrors: config.registryMirrors,
      insecure: config.insecureRegistries,
      imageProxy: config.imageProxy || undefined,
      log: (message) => log.info(message),
    });
    cleanup.push(() => registry.close());
    cleanup.push(reloadOnSighup(args, { config, registry: registry.config, log }));
    const images = new ImageManager(client, {
      snapshotter: config.snapshotter,
      log: (message) => log.info(message),
      registry,
      onPullBytes: (bytes) => metrics.pulled(bytes),
    });
    cleanup.push(images.watch());
    // lxcfs starts lazily, on the first create that needs it (see lxcfs.ts); it is closed after
    // the containers (cleanup runs in reverse).
    // The container manager needs lxcfs and lxcfs asks it for its users: set just below.
    const lxcfs = new LxcfsManager({
      binary: config.lxcfs,
      home: config.lxcfsHome,
      propagationDir: `${home}/lxcfs`,
      log,
      containers: () => manager.containers?.lxcfsUsers() ?? [],
    });
    cleanup.push(() => lxcfs.close());
    const containers = new ContainerManager({
      client,
      store,
      images,
      log,
      home,
      snapshotter: config.snapshotter,
      runtimes: config.runtimes,
      defaultRuntime: config.defaultRuntime,
      events,
      staticInit: config.richInit,
      hooks: config.hooks,
      volumes,
      lxcfs,
      enableLxcfs: config.enableLxcfs,
      networks,
      logConfig: { Type: config.logDriver, Config: config.logOpts },
      plugins: hookPlugins,
    });
    manager.containers = containers;
    await containers.restore();
    await networks.restore(new Set(containers.list().map((c) => c.id)));
    // Containers that outlived the previous daemon may hold binds of an lxcfs it stopped.
    if (containers.lxcfsUsers().length > 0) {
      await lxcfs.remountAll().catch((err) =>
        log.warn("remounting lxcfs in running containers failed", { error: messageOf(err) })
      );
    }
    await volumes.restore({
      liveContainers: new Set(containers.list().map((c) => c.id)),
      warn: (message) => log.warn(message),
    });
    // With networks and volumes back: `always` and friends start again (daemon restart, reboot).
    await containers.startByPolicy();
    cleanup.push(() => containers.close());
    const exec = new ExecManager({ client, containers, log });
    cleanup.push(() => exec.close());

    const system = new SystemInfo(config, {
      client,
      containers,
      images,
      lxcfs,
      containerdPid: supervised && (() => supervised.pid),
    });
    const app = createApi({
      containers,
      exec,
      images: {
        images: withImageEvents(images, events),
        imageUser: (id) => containers.imageUser(id),
      },
      system,
      containerFiles: {
        files: new ContainerFiles({ client, containers, tmpDir: `${home}/tmp` }),
        monitor: new ContainerMonitor({ client, containers }),
      },
      events,
      volumes,
      networks,
      metrics,
      plugins: hookPlugins,
      disk: new DiskUsage({ client, containers, images, volumes, log }),
      log,
    });
    // The CRI before the API: a client that finds the API answering finds the CRI too.
    if (config.enableCri) {
      // Loaded only when asked for: a daemon without the CRI does not carry its modules.
      const { startCri } = await import("../cri/mod.ts");
      const cri = await startCri({
        client,
        containers,
        exec,
        images,
        monitor: new ContainerMonitor({ client, containers }),
        store,
        log,
        plugins: hookPlugins,
      }, {
        listen: config.listenCri,
        streamPort: config.streamServerPort,
        sandboxImage: config.sandboxImage,
        // Pods get the network of --cni-conf-dir, or the network manager's default bridge.
        podNetworking: true,
        cniConfDir: config.cniConfDir,
        cniBinDirs: config.cniBinDirs,
        imageFsPath: `${home}/containerd/root/io.containerd.snapshotter.v1.${config.snapshotter}`,
      });
      cleanup.push(() => cri.close());
    }
    const server = await serveApi(app, {
      listen: config.listen,
      log,
      group: config.group,
      tls: config.tls
        ? {
          cert: config.tlsCert,
          key: config.tlsKey,
          ca: config.tlsCaCert || undefined,
          verify: config.tlsVerify,
        }
        : undefined,
      insecureTcp: config.insecureTcp,
    });
    cleanup.push(() => server.close());
    // Memory freed after bursts (a container's output, a pull, many starts) goes back to the
    // system, with a full collection when the API has been busy and is idle now.
    cleanup.push(startMemoryReclaimer({ activity: () => server.activity() }));
    log.info("pouch daemon ready", { home, pid: Deno.pid });
    // systemd's Type=notify: only now do the API, containerd and the CRI all answer.
    notifyManager(`READY=1\nMAINPID=${Deno.pid}\nSTATUS=serving`, log);

    const signal = await shutdown.promise;
    log.info("shutting down", { signal });
    notifyManager("STOPPING=1\nSTATUS=stopping: draining API requests", log);
    await hookPlugins.daemonBeforeStop(daemonInfo);
    return 0;
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (err) {
        log.warn("shutdown step failed", { error: messageOf(err) });
      }
    }
  }
}

/** Writes our pid; refuses to start when another live daemon holds the file. */
async function writePidfile(path: string): Promise<void> {
  try {
    const pid = Number((await Deno.readTextFile(path)).trim());
    if (pid > 0 && pid !== Deno.pid) {
      const alive = await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
      const cmdline = alive ? await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "") : "";
      if (alive && cmdline.includes("daemon")) {
        throw new Error(`pid file ${path} names a running daemon (pid ${pid})`);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(path, `${Deno.pid}\n`);
}
