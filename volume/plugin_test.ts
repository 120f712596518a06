import assert from "node:assert/strict";
import { kindOf } from "../engine/errors.ts";
import { pluginHandler, type PluginHandlerOptions } from "../testdata/volume_plugin.ts";
import type { VolumeBucket, VolumeStore } from "./mod.ts";
import { VolumeManager } from "./mod.ts";
import {
  activatePlugin,
  type DiscoverOptions,
  discoverPlugin,
  type PluginAddress,
  PluginClient,
  PluginRegistry,
} from "./plugin.ts";

/** A temp dir removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-plugin-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** A plugin served in-process on `socket` by `handler`; shut down on dispose. */
function serve(
  socket: string,
  handler: (request: Request) => Response | Promise<Response>,
): AsyncDisposable {
  const server = Deno.serve({ path: socket, transport: "unix", onListen: () => {} }, handler);
  return {
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await server.finished;
    },
  };
}

/** The test plugin (testdata/volume_plugin.ts) in-process, recording the calls it gets. */
function servePlugin(
  socket: string,
  root: string,
  options: PluginHandlerOptions = {},
): AsyncDisposable & { calls: string[]; release(): void } {
  const calls: string[] = [];
  const hung = new AbortController();
  const server = serve(
    socket,
    pluginHandler(root, {
      ...options,
      signal: hung.signal,
      onCall: (method, body) =>
        calls.push([method, body.Name, body.ID].filter((x) => x !== undefined).join(" ")),
    }),
  );
  return {
    calls,
    release: () => hung.abort(),
    async [Symbol.asyncDispose]() {
      hung.abort();
      await server[Symbol.asyncDispose]();
    },
  };
}

/** A unix socket server that answers every connection with `reply` (or closes it at once). */
function serveRaw(socket: string, reply: string | undefined): AsyncDisposable {
  const listener = Deno.listen({ transport: "unix", path: socket });
  const loop = (async () => {
    for await (const conn of listener) {
      try {
        if (reply !== undefined) {
          await conn.read(new Uint8Array(4096));
          await conn.write(new TextEncoder().encode(reply));
        }
      } catch {
        // The client went away first.
      } finally {
        conn.close();
      }
    }
  })().catch(() => {});
  return {
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
    },
  };
}

function address(name: string, socket: string): PluginAddress {
  return { name, addr: `unix://${socket}`, source: socket, identity: socket };
}

async function rejectsWith(promise: Promise<unknown>, kind: string, message: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(kindOf(err), kind, (err as Error).message);
    assert.match((err as Error).message, message);
    return true;
  });
}

Deno.test("discoverPlugin() finds sockets, then .spec and .json files, in order", async () => {
  await using dir = await tempDir();
  const [a, b] = [`${dir.path}/a`, `${dir.path}/b`];
  await Deno.mkdir(`${a}/sub`, { recursive: true });
  await Deno.mkdir(b);
  const opts: DiscoverOptions = { dirs: [a, b] };
  assert.equal(await discoverPlugin("nothing", opts), undefined);

  await Deno.writeTextFile(`${b}/spec.spec`, "tcp://127.0.0.1:8080\n");
  const spec = await discoverPlugin("spec", opts);
  assert.equal(spec?.addr, "tcp://127.0.0.1:8080");
  assert.equal(spec?.source, `${b}/spec.spec`);

  await Deno.writeTextFile(
    `${a}/js.json`,
    JSON.stringify({ Name: "js", Addr: "https://plugins:8443", TLSConfig: { CAFile: "/ca.pem" } }),
  );
  const json = await discoverPlugin("js", opts);
  assert.equal(json?.addr, "https://plugins:8443");
  assert.deepEqual(json?.tls, { CAFile: "/ca.pem" });

  // A socket wins over a spec file, wherever they are; NAME/NAME.sock counts too.
  await Deno.mkdir(`${b}/spec`);
  using listener = Deno.listen({ transport: "unix", path: `${b}/spec/spec.sock` });
  const socket = await discoverPlugin("spec", opts);
  assert.equal(socket?.addr, `unix://${b}/spec/spec.sock`);
  assert.match(socket?.identity ?? "", /@\d+:\d+$/);
  void listener;

  // A regular file named like a socket is not one.
  await Deno.writeTextFile(`${a}/plain.sock`, "");
  assert.equal(await discoverPlugin("plain", opts), undefined);
  // Names that are paths are never looked up.
  for (const bad of ["../b/spec", "a/b", "..", ""]) {
    assert.equal(await discoverPlugin(bad, opts), undefined);
  }
});

Deno.test("discoverPlugin() refuses unreadable spec and json files, naming them", async () => {
  await using dir = await tempDir();
  const opts = { dirs: [dir.path] };
  const cases: Array<[string, string, RegExp]> = [
    ["noscheme.spec", "/run/x.sock", /noscheme\.spec.*invalid plugin address/],
    ["ftp.spec", "ftp://host:21", /ftp\.spec.*unsupported plugin address/],
    ["noport.spec", "tcp://host", /want tcp:\/\/host:port/],
    ["bad.json", "{nope", /bad\.json: not valid JSON/],
    ["noaddr.json", JSON.stringify({ Name: "x" }), /noaddr\.json: want/],
    ["tls.json", JSON.stringify({ Addr: "tcp://h:1", TLSConfig: 3 }), /TLSConfig/],
  ];
  for (const [file, text, message] of cases) {
    await Deno.writeTextFile(`${dir.path}/${file}`, text);
    await rejectsWith(discoverPlugin(file.split(".")[0]!, opts), "InvalidArgument", message);
  }
});

Deno.test("a plugin driver speaks the whole protocol", async () => {
  await using dir = await tempDir();
  const socket = `${dir.path}/p.sock`;
  const root = `${dir.path}/volumes`;
  await Deno.mkdir(root);
  const accepts: string[] = [];
  const handler = pluginHandler(root);
  await using _server = serve(socket, (request) => {
    accepts.push(request.headers.get("accept") ?? "");
    return handler(request);
  });
  const driver = await activatePlugin(address("p", socket), { timeoutMs: 2000 });
  assert.equal(driver.name, "p");
  assert.deepEqual(driver.capabilities(), { scope: "local" });
  assert.ok(accepts.every((a) => a === "application/vnd.docker.plugins.v1.2+json"));

  const volume = await driver.create("v1", { color: "blue" });
  assert.deepEqual(volume, {
    name: "v1",
    options: { color: "blue" },
    mountpoint: `${root}/v1`,
    status: { mountedBy: [] },
  });
  assert.equal(await driver.mount(volume, "c1"), `${root}/v1`);
  assert.deepEqual(await driver.describe(volume), {
    mountpoint: `${root}/v1`,
    status: { mountedBy: ["c1"] },
  });
  assert.equal(await driver.pathOf("v1"), `${root}/v1`);
  assert.deepEqual((await driver.list()).map((v) => v.name), ["v1"]);
  await rejectsWith(driver.remove(volume), "System", /volume plugin "p": .*Remove: .*mounted/);
  await driver.unmount(volume, "c1");
  await driver.remove(volume);
  await rejectsWith(
    driver.get("v1"),
    "System",
    /^volume plugin "p": VolumeDriver.Get: no such volume: v1$/,
  );
  await rejectsWith(
    driver.create("v2", { fail: "yes" }),
    "System",
    /VolumeDriver.Create: told to fail: yes/,
  );
});

Deno.test("activatePlugin() refuses a plugin that is not a volume driver", async () => {
  await using dir = await tempDir();
  const socket = `${dir.path}/authz.sock`;
  await using _server = servePlugin(socket, dir.path, { implements: ["authz"] });
  await rejectsWith(
    activatePlugin(address("authz", socket)),
    "InvalidArgument",
    /plugin "authz" does not implement VolumeDriver \(it implements: authz\)/,
  );
});

Deno.test("a plugin that does not answer in time fails the call, naming it", async () => {
  await using dir = await tempDir();
  const socket = `${dir.path}/slow.sock`;
  await using server = servePlugin(socket, dir.path, { hang: ["VolumeDriver.Create"] });
  const driver = await activatePlugin(address("slow", socket), { timeoutMs: 200 });
  const started = Date.now();
  await rejectsWith(
    driver.create("v", {}),
    "Unavailable",
    /volume plugin "slow": VolumeDriver.Create: .*no answer within 200 ms/,
  );
  assert.ok(Date.now() - started < 2000);
  server.release();
});

Deno.test("garbage answers are errors naming the plugin and the call", async () => {
  await using dir = await tempDir();
  const cases: Array<[string | undefined, RegExp, string]> = [
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",
      /answered garbage \(not JSON\)/,
      "System",
    ],
    ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", /"\[\]", not a JSON object/, "System"],
    ['HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"Err": 42}', /Err is not a string/, "System"],
    ["SSH-2.0-OpenSSH\r\n\r\n", /answered garbage: not an HTTP answer/, "System"],
    [
      'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\n\r\n{"Err": "broken"}',
      /HTTP 500: broken/,
      "System",
    ],
    [
      "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
      /HTTP 404: not found/,
      "System",
    ],
    ["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", /closed in the middle/, "Unavailable"],
    [undefined, /connection closed without an answer|connection lost/, "Unavailable"],
  ];
  let i = 0;
  for (const [reply, message, kind] of cases) {
    const socket = `${dir.path}/g${i++}.sock`;
    await using _server = serveRaw(socket, reply);
    const client = new PluginClient({ name: "junk", addr: `unix://${socket}` }, {
      timeoutMs: 2000,
    });
    await assert.rejects(client.call("VolumeDriver.Get", { Name: "v" }), (err: unknown) => {
      assert.equal(kindOf(err), kind, `${reply}: ${(err as Error).message}`);
      assert.match((err as Error).message, /^volume plugin "junk": VolumeDriver.Get: /);
      assert.match((err as Error).message, message);
      return true;
    });
  }
});

Deno.test("the client reads chunked answers and reports a missing plugin", async () => {
  await using dir = await tempDir();
  const socket = `${dir.path}/chunky.sock`;
  {
    await using _server = serveRaw(
      socket,
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
        '4\r\n{"Mo\r\n13;ext=1\r\nuntpoint": "/data"}\r\n0\r\n\r\n',
    );
    const client = new PluginClient({ name: "chunky", addr: `unix://${socket}` });
    assert.deepEqual(await client.call("VolumeDriver.Path", { Name: "v" }), {
      Mountpoint: "/data",
    });
  }
  const gone = new PluginClient({ name: "gone", addr: `unix://${dir.path}/none.sock` });
  await rejectsWith(
    gone.call("Plugin.Activate"),
    "Unavailable",
    /volume plugin "gone": Plugin.Activate: unix:\/\/.*none.sock: cannot connect/,
  );
  assert.equal(gone.unreachable, true);
});

Deno.test("a wrong-shaped answer is garbage: Get without a Volume, Mount without a path", async () => {
  await using dir = await tempDir();
  const socket = `${dir.path}/odd.sock`;
  const calls: string[] = [];
  await using _server = serve(socket, async (request) => {
    const method = new URL(request.url).pathname.slice(1);
    calls.push(method);
    await request.body?.cancel();
    const answers: Record<string, unknown> = {
      "Plugin.Activate": { Implements: ["VolumeDriver"] },
      "VolumeDriver.Get": { Volume: "v" },
      "VolumeDriver.Mount": { Mountpoint: "relative/path" },
    };
    return Response.json(answers[method] ?? {});
  });
  const driver = await activatePlugin(address("odd", socket));
  await rejectsWith(driver.get("v"), "System", /VolumeDriver.Get: answered garbage: no Volume/);
  await rejectsWith(
    driver.mount({ name: "v", options: {}, mountpoint: "", status: {} }, "c1"),
    "System",
    /Mountpoint "relative\/path" is not an absolute path/,
  );
  // The mount that answered garbage was undone.
  assert.deepEqual(calls.slice(-2), ["VolumeDriver.Mount", "VolumeDriver.Unmount"]);
  // A create whose Get answers garbage is removed at the plugin again.
  calls.length = 0;
  await rejectsWith(driver.create("v", {}), "System", /answered garbage/);
  assert.deepEqual(calls, ["VolumeDriver.Create", "VolumeDriver.Get", "VolumeDriver.Remove"]);
});

Deno.test("PluginRegistry activates once, again after a restart, and forgets a gone plugin", async () => {
  await using dir = await tempDir();
  const socket = `${dir.path}/reg.sock`;
  const registry = new PluginRegistry({ dirs: [dir.path], timeoutMs: 2000 });
  assert.equal(await registry.resolve("reg"), undefined);
  {
    await using server = servePlugin(socket, dir.path);
    const [first, second] = await Promise.all([registry.resolve("reg"), registry.resolve("reg")]);
    assert.ok(first);
    assert.equal(first, second);
    assert.equal(await registry.resolve("reg"), first);
    assert.deepEqual(server.calls.filter((c) => c === "Plugin.Activate"), ["Plugin.Activate"]);
  }
  await Deno.remove(socket).catch(() => {});
  assert.equal(await registry.resolve("reg"), undefined);
  await using again = servePlugin(socket, dir.path);
  assert.ok(await registry.resolve("reg"));
  assert.deepEqual(again.calls.filter((c) => c === "Plugin.Activate"), ["Plugin.Activate"]);
});

/** An in-memory store whose writes can be made to fail. */
class MemoryStore implements VolumeStore {
  data = new Map<string, string>();
  failWrites = false;
  /** Writes that succeed before `failWrites` takes effect. */
  writesBeforeFailing = 0;
  bucket<T>(kind: string): VolumeBucket<T> {
    const key = (id: string) => `${kind}/${id}`;
    return {
      find: (id) => {
        const text = this.data.get(key(id));
        return text === undefined ? undefined : JSON.parse(text) as T;
      },
      list: () =>
        [...this.data.entries()].filter(([k]) => k.startsWith(`${kind}/`))
          .map(([, v]) => JSON.parse(v) as T),
      put: (id, value) => {
        if (this.failWrites && this.writesBeforeFailing-- <= 0) throw new Error("disk full");
        this.data.set(key(id), JSON.stringify(value));
      },
      delete: (id) => void this.data.delete(key(id)),
    };
  }
  transaction<R>(fn: () => R): R {
    return fn();
  }
}

Deno.test("VolumeManager uses plugins found by name, and plugin failures record nothing", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/data`;
  await Deno.mkdir(root);
  await using plugin = servePlugin(`${dir.path}/tp.sock`, root, {
    hang: ["VolumeDriver.Create"],
  });
  const store = new MemoryStore();
  const registry = new PluginRegistry({ dirs: [dir.path], timeoutMs: 300 });
  const volumes = new VolumeManager({
    store,
    drivers: [],
    resolveDriver: (name) => registry.resolve(name),
  });

  await rejectsWith(
    volumes.create({ Name: "x", Driver: "nope" }),
    "InvalidArgument",
    /^volume driver "nope" not found$/,
  );
  await rejectsWith(
    volumes.create({ Name: "slow", Driver: "tp" }),
    "Unavailable",
    /volume plugin "tp": VolumeDriver.Create: .*no answer within 300 ms/,
  );
  assert.deepEqual([...store.data.keys()], []);
  plugin.release();
  assert.ok(plugin.calls.includes("VolumeDriver.Create slow"));
});

Deno.test("VolumeManager: create, mount, inspect and remove through a plugin", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/data`;
  await Deno.mkdir(root);
  await using plugin = servePlugin(`${dir.path}/tp.sock`, root);
  const store = new MemoryStore();
  const registry = new PluginRegistry({ dirs: [dir.path], timeoutMs: 2000 });
  const volumes = new VolumeManager({
    store,
    drivers: [],
    resolveDriver: (name) => registry.resolve(name),
  });

  const created = await volumes.create({ Name: "v1", Driver: "tp", DriverOpts: { a: "b" } });
  assert.equal(created.Driver, "tp");
  assert.equal(created.Mountpoint, `${root}/v1`);
  assert.deepEqual(created.Options, { a: "b" });
  assert.deepEqual(volumes.list().map((v) => [v.Name, v.Driver, v.Scope]), [["v1", "tp", "local"]]);
  await rejectsWith(
    volumes.create({ Name: "v2", Driver: "tp", DriverOpts: { fail: "x" } }),
    "System",
    /told to fail/,
  );

  const attached = await volumes.attach("v1", "c1");
  assert.deepEqual(attached, { name: "v1", driver: "tp", source: `${root}/v1` });
  const inspected = await volumes.inspect("v1");
  assert.deepEqual(inspected.Status, { mountedBy: ["c1"] });
  await rejectsWith(volumes.remove("v1"), "Conflict", /volume is in use - \[c1\]/);
  await volumes.detach("v1", "c1");
  await volumes.remove("v1");
  assert.deepEqual([...store.data.keys()], []);
  await assert.rejects(Deno.stat(`${root}/v1`), Deno.errors.NotFound);
  assert.deepEqual(plugin.calls.filter((c) => !c.startsWith("VolumeDriver.Get")), [
    "Plugin.Activate",
    "VolumeDriver.Capabilities",
    "VolumeDriver.Create v1",
    "VolumeDriver.Create v2",
    "VolumeDriver.Mount v1 c1",
    "VolumeDriver.Unmount v1 c1",
    "VolumeDriver.Remove v1",
  ]);

  // pouch cannot record the intent: the plugin is never asked to create anything.
  store.failWrites = true;
  const before = plugin.calls.length;
  await assert.rejects(volumes.create({ Name: "v3", Driver: "tp" }), /disk full/);
  assert.deepEqual(plugin.calls.slice(before), []);
  // The plugin created the volume but pouch cannot record it: removed at the plugin again.
  store.writesBeforeFailing = 1;
  await assert.rejects(volumes.create({ Name: "v3", Driver: "tp" }), /disk full/);
  assert.deepEqual(plugin.calls.slice(-3), [
    "VolumeDriver.Create v3",
    "VolumeDriver.Get v3",
    "VolumeDriver.Remove v3",
  ]);
  assert.equal(store.data.size, 0);
  store.failWrites = false;
  assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
});

Deno.test("VolumeManager: rm -f forgets a plugin volume whose plugin is gone", async () => {
  await using dir = await tempDir();
  const store = new MemoryStore();
  const registry = new PluginRegistry({ dirs: [dir.path], timeoutMs: 2000 });
  const volumes = new VolumeManager({
    store,
    drivers: [],
    resolveDriver: (name) => registry.resolve(name),
  });
  {
    await using _plugin = servePlugin(`${dir.path}/tp.sock`, dir.path);
    await volumes.create({ Name: "v1", Driver: "tp" });
  }
  await Deno.remove(`${dir.path}/tp.sock`).catch(() => {});
  await rejectsWith(volumes.remove("v1"), "InvalidArgument", /volume driver "tp" not found/);
  // A detach never fails because of the plugin, and restore does not call it.
  await volumes.detach("v1", "c1");
  await volumes.restore({ warn: (m) => assert.fail(m) });
  await volumes.remove("v1", { force: true });
  assert.deepEqual(volumes.list(), []);
});

Deno.test("VolumeManager.attach() creates a missing volume with the driver it is given", async () => {
  await using dir = await tempDir();
  await using plugin = servePlugin(`${dir.path}/tp.sock`, dir.path);
  const registry = new PluginRegistry({ dirs: [dir.path], timeoutMs: 2000 });
  const volumes = new VolumeManager({
    store: new MemoryStore(),
    drivers: [],
    resolveDriver: (name) => registry.resolve(name),
  });
  const attached = await volumes.attach("auto", "c1", { driver: "tp" });
  assert.deepEqual(attached, { name: "auto", driver: "tp", source: `${dir.path}/auto` });
  assert.ok(plugin.calls.includes("VolumeDriver.Mount auto c1"));
  await volumes.detach("auto", "c1");
  await volumes.remove("auto");
});
