import assert from "node:assert/strict";
import { build, readStamp, SHEBANG } from "./build.ts";

const decoder = new TextDecoder();
/** The checkout. */
const ROOT = new URL("..", import.meta.url).pathname;
/** grpc-js as deno.json pins it (so that it is in the cache). */
const GRPC_JS = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
  .imports["@grpc/grpc-js"] as string;

/** A temp directory outside the checkout, removed when disposed. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-dist-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** Runs `command` from `cwd`; resolves with its exit code and output. */
async function run(command: string, args: string[], cwd: string) {
  const result = await new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: result.code,
    stdout: decoder.decode(result.stdout),
    stderr: decoder.decode(result.stderr),
  };
}

Deno.test("build() is reproducible: two builds of the same tree are byte-identical", async () => {
  await using dir = await tempDir();
  await build({ output: `${dir.path}/a/pouch` });
  await build({ output: `${dir.path}/b/pouch` });
  const a = await Deno.readFile(`${dir.path}/a/pouch`);
  const b = await Deno.readFile(`${dir.path}/b/pouch`);
  assert.equal(a.length, b.length);
  assert(a.every((byte, i) => byte === b[i]), "the two builds differ");
});

Deno.test("build() writes an executable script whose version carries the stamp", async () => {
  await using dir = await tempDir();
  const stamp = await build({ output: `${dir.path}/pouch` });
  const info = await Deno.stat(`${dir.path}/pouch`);
  assert.equal(info.mode! & 0o777, 0o755);
  const text = await Deno.readTextFile(`${dir.path}/pouch`);
  assert(text.startsWith(`${SHEBANG}\n`));

  // No daemon: the client half is printed, then the connection error.
  const result = await run("./pouch", ["-H", `unix://${dir.path}/none.sock`, "version"], dir.path);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stdout, /^Client:\n Version: +0\.\d+\.\d+\n/);
  assert(stamp.gitCommit !== "" && stamp.buildTime !== "", "built outside a git checkout?");
  assert(result.stdout.includes(` Git commit:        ${stamp.gitCommit}\n`), result.stdout);
  assert(result.stdout.includes(` Built:             ${stamp.buildTime}\n`), result.stdout);
  assert.match(result.stderr, /Cannot connect to the pouch daemon/);
});

Deno.test("the built CLI and daemon do not evaluate grpc-js (only the CRI server does)", async () => {
  await using dir = await tempDir();
  await build({ output: `${dir.path}/pouch` });
  // grpc-js reads these variables as its modules are evaluated: denying them turns its
  // evaluation into a failure that names them.
  const probe = [
    "run",
    "-A",
    "--deny-env=GRPC_VERBOSITY,GRPC_NODE_VERBOSITY,GRPC_TRACE,GRPC_NODE_TRACE",
    "--ext=js",
    "--no-config",
  ];
  const cli = await run(
    Deno.execPath(),
    [...probe, "./pouch", "-H", `unix://${dir.path}/none.sock`, "version"],
    dir.path,
  );
  assert.match(cli.stdout, /^Client:\n/);
  assert.doesNotMatch(cli.stderr, /GRPC/);
  assert.match(cli.stderr, /Cannot connect to the pouch daemon/);

  // The daemon's modules (containerd's client included) evaluate without grpc-js.
  const daemon = await run(Deno.execPath(), [...probe, "./pouch", "daemon", "--help"], dir.path);
  assert.equal(daemon.code, 0, daemon.stderr);
  assert.match(daemon.stdout, /--enable-cri/);
  assert.doesNotMatch(daemon.stderr, /GRPC/);

  // The control: the same probe catches grpc-js being evaluated.
  await Deno.writeTextFile(`${dir.path}/grpc.js`, `await import("${GRPC_JS}");\n`);
  const control = await run(Deno.execPath(), [...probe, "./grpc.js"], dir.path);
  assert.notEqual(control.code, 0);
  assert.match(control.stderr, /NotCapable: Requires env access to "GRPC_/);
});

Deno.test("readStamp() takes the date from SOURCE_DATE_EPOCH when it is set", async () => {
  const previous = Deno.env.get("SOURCE_DATE_EPOCH");
  Deno.env.set("SOURCE_DATE_EPOCH", "1700000000");
  try {
    const stamp = await readStamp();
    assert.equal(stamp.buildTime, "2023-11-14T22:13:20.000Z");
  } finally {
    if (previous === undefined) Deno.env.delete("SOURCE_DATE_EPOCH");
    else Deno.env.set("SOURCE_DATE_EPOCH", previous);
  }
});

Deno.test("the daemon's start imports no Node module but node:sqlite", async () => {
  // Any other node: module loads Deno's Node compatibility layer, about 10 MB of the daemon's
  // RSS; the parts that need one (the CRI, TLS, syslog over UDP) import it when they start.
  const info = JSON.parse(
    (await run(Deno.execPath(), ["info", "--json", "engine/daemon.ts"], ROOT)).stdout,
  ) as {
    roots: string[];
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  const bySpecifier = new Map(info.modules.map((module) => [module.specifier, module]));
  const seen = new Set<string>(info.roots);
  const queue = [...info.roots];
  while (queue.length > 0) {
    for (const dependency of bySpecifier.get(queue.pop()!)?.dependencies ?? []) {
      const specifier = dependency.code?.specifier;
      if (!specifier || dependency.isDynamic || seen.has(specifier)) continue;
      seen.add(specifier);
      queue.push(specifier);
    }
  }
  const nodeModules = [...seen].filter((specifier) => specifier.startsWith("node:"));
  assert.deepEqual(nodeModules, ["node:sqlite"]);
  assert(seen.has(new URL("../engine/containerd.ts", import.meta.url).href), "walked nothing?");
});
