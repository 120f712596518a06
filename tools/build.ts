/**
 * `deno task build`: writes `dist/pouch`, the whole program (daemon and CLI) in one executable
 * JavaScript file made with `deno bundle`, which works offline. The host then needs only Deno,
 * containerd and runc. `deno task compile` makes a self-contained binary with `deno compile`
 * instead, which downloads Deno's runtime and so needs the network.
 *
 * `dist/pouch` is, after the shebang line, the CLI's modules bundled (and minified) as ES modules;
 * then, on its last line, a comment carrying the daemon's modules, bundled separately as
 * CommonJS, minified, compressed with brotli and in base64. Only `pouch daemon` reads that
 * comment back, decompresses and evaluates it (see {@link writeDaemonShim}); the CLI pays only
 * for the bytes of the file (see {@link daemonPayload} for why this layout). Within the CLI's
 * bundle, `cmd/mod.ts` evaluates only the module of the command that runs.
 *
 * Both stamp `engine/version.ts` with the git commit and the commit's date without touching the
 * checkout: they bundle through an import map that points `engine/version.ts` at a generated copy
 * under `dist/.stamp/`. The date comes from the commit (or `SOURCE_DATE_EPOCH`), never from the
 * clock, so two builds of the same commit are byte-identical.
 *
 * ```sh
 * deno run -A tools/build.ts [--output PATH] [--compile]
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import { brotliCompressSync, constants as zlib } from "node:zlib";
import * as versionConstants from "../engine/version.ts";

/** The checkout's root, with a trailing slash. */
const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Where the build writes by default. */
export const DEFAULT_OUTPUT: string = `${ROOT}dist/pouch`;
/**
 * The stamped version module and the import map. A fixed path: the bundle names each module by
 * its path relative to the checkout in a comment, so a varying path would change the output.
 */
const STAMP_DIR = `${ROOT}dist/.stamp`;

/**
 * The first line of `dist/pouch`. `--ext=js` because the file has no extension (without it Deno
 * does not know the file is JavaScript and start-up takes 30 ms longer); `--no-config` so that a
 * `deno.json` in the directory it runs from changes nothing; a young generation of 1 MB semi-
 * spaces (V8's default grows to 16 MB) because the daemon lives long and allocates little at a
 * time: its idle RSS is about 20 MB smaller, at no measured cost to the CLI or the daemon.
 */
export const SHEBANG =
  "#!/usr/bin/env -S deno run -A --ext=js --no-config --v8-flags=--max-semi-space-size=1,--expose-gc";

/** The V8 flags of {@link SHEBANG}, for daemons run from the checkout (the tests' harness). */
export const V8_FLAGS: string = SHEBANG.slice(SHEBANG.indexOf("--v8-flags="));

/** What the build stamps into `engine/version.ts`. */
export interface Stamp {
  /** The commit's short hash, `-dirty` appended when tracked files differ from it. */
  gitCommit: string;
  /** The commit's date (or `SOURCE_DATE_EPOCH`) in ISO 8601, UTC. */
  buildTime: string;
}

/** Options of {@link build}. */
export interface BuildOptions {
  /** The executable to write; `dist/pouch` by default. */
  output?: string;
  /** Use `deno compile` (needs to download Deno's runtime) instead of `deno bundle`. */
  compile?: boolean;
}

/** Builds pouch into one executable file; resolves with the stamp it carries. */
export async function build(options: BuildOptions = {}): Promise<Stamp> {
  const output = options.output ?? DEFAULT_OUTPUT;
  const stamp = await readStamp();
  await Deno.mkdir(STAMP_DIR, { recursive: true });
  const version = await writeStampedVersion(stamp);
  const stamped = await writeImportMap("stamped", { "engine/version.ts": version });
  await Deno.mkdir(dirname(output), { recursive: true });
  // Write then rename, so that a running `pouch` is never replaced by half a file (and because
  // `deno compile` refuses to overwrite a file that it did not make).
  const partial = `${output}.partial`;
  await Deno.remove(partial).catch(() => {});
  if (options.compile) {
    // A compiled binary loads its modules as a graph, so main.ts's dynamic import of the daemon
    // keeps it out of the CLI's start-up as it does from a checkout.
    await run(["compile", "-A", "--import-map", stamped, "--output", partial, "main.ts"]);
    await Deno.rename(partial, output);
    return stamp;
  }

  // Bundled to stdout rather than with `--output`, so that the bytes do not depend on where the
  // file is written (unminified, the bundle names each module by its path relative to the
  // output). Minified with `--keep-names`: the start-up of the CLI costs about 1 ms per 300 KB of
  // file (Deno reads, hashes and hands the whole file to V8), and names keep stack traces and
  // `constructor.name` meaningful.
  const daemon = await run([
    "bundle",
    "--platform",
    "deno",
    "--format",
    "cjs",
    "--minify",
    "--keep-names",
    "--import-map",
    stamped,
    "engine/daemon.ts",
  ]);
  const shim = await writeDaemonShim();
  const importMap = await writeImportMap("bundle", {
    "engine/version.ts": version,
    "engine/daemon.ts": shim,
  });
  const bundle = await run([
    "bundle",
    "--platform",
    "deno",
    "--minify",
    "--keep-names",
    "--import-map",
    importMap,
    "main.ts",
  ]);
  const text = new TextEncoder().encode(`${SHEBANG}\n${new TextDecoder().decode(bundle)}`);
  const payload = new TextEncoder().encode(daemonPayload(daemon));
  await Deno.writeFile(partial, concat(text, payload), { mode: 0o755 });
  await Deno.chmod(partial, 0o755);
  await Deno.rename(partial, output);
  return stamp;
}

/** Reads the commit and its date from git (or `SOURCE_DATE_EPOCH`); empty outside a checkout. */
export async function readStamp(): Promise<Stamp> {
  const head = await git(["rev-parse", "--short=12", "HEAD"]);
  const changes = head === undefined
    ? ""
    : await git(["status", "--porcelain", "--untracked-files=no"]);
  const gitCommit = head === undefined ? "" : changes ? `${head}-dirty` : head;
  const epoch = Deno.env.get("SOURCE_DATE_EPOCH");
  let date: Date | undefined;
  if (epoch) {
    date = new Date(Number(epoch) * 1000);
  } else if (head !== undefined) {
    date = new Date(await git(["log", "-1", "--format=%cI"]) ?? "");
  }
  if (date && Number.isNaN(date.getTime())) {
    throw new Error(`no valid build date (SOURCE_DATE_EPOCH=${epoch ?? ""})`);
  }
  return { gitCommit, buildTime: date?.toISOString() ?? "" };
}

/**
 * Writes `dist/.stamp/version.ts`: every export of `engine/version.ts`, with GIT_COMMIT and
 * BUILD_TIME set from `stamp`. Returns its path.
 */
async function writeStampedVersion(stamp: Stamp): Promise<string> {
  const values: Record<string, unknown> = {
    ...versionConstants,
    GIT_COMMIT: stamp.gitCommit,
    BUILD_TIME: stamp.buildTime,
  };
  let module = "// Generated by tools/build.ts: engine/version.ts as stamped by the build.\n";
  for (const [name, value] of Object.entries(values)) {
    module += `export const ${name} = ${JSON.stringify(value)};\n`;
  }
  const path = `${STAMP_DIR}/version.ts`;
  await Deno.writeTextFile(path, module);
  return path;
}

/**
 * Starts the comment at the end of `dist/pouch` that carries the daemon (see
 * {@link daemonPayload}); the payload runs from it to the end of the line.
 */
const DAEMON_MARKER = "\n// pouch daemon: engine/daemon.ts as CommonJS, brotli, base64:\n//";

/**
 * The end of `dist/pouch`: the daemon's modules bundled as CommonJS (`daemon`), compressed with
 * brotli and written in base64 on one line comment, which `runDaemon` in the shim (see
 * {@link writeDaemonShim}) reads back from the file.
 *
 * Why so: every start-up of the CLI pays for every byte of the file, whatever the bytes are, as
 * Deno and V8 go through the whole module before running it; on the machine measured, about
 * 1 ms per 300 KB. The daemon as modules in the bundle cost the CLI about 35 ms (the bundle
 * hoists the daemon's imports of `node:http`, `node:http2` and `node:sqlite`, which load before
 * any code runs, and V8 compiles the code); as a 2 MB string literal full of escapes, 6 ms; as
 * the same text in a comment, 5 ms. Minified, compressed and in base64 it is 0.3 MB, about 1 ms.
 * Brotli because it makes the minified bundle 18% smaller than CompressionStream's gzip, and it
 * is deterministic (two builds give the same bytes). A line comment because base64 has no line
 * break.
 */
function daemonPayload(daemon: Uint8Array): string {
  const compressed = brotliCompressSync(daemon, {
    params: {
      [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT,
      [zlib.BROTLI_PARAM_QUALITY]: zlib.BROTLI_MAX_QUALITY,
      [zlib.BROTLI_PARAM_SIZE_HINT]: daemon.length,
    },
  });
  return `${DAEMON_MARKER}${Buffer.from(compressed).toString("base64")}\n`;
}

/**
 * Writes `dist/.stamp/daemon.ts`, which stands in for `engine/daemon.ts` in `dist/pouch`: its
 * `runDaemon` reads the daemon's bundle from the comment at the end of the file it is part of
 * (see {@link daemonPayload}), decompresses it (a few ms) and evaluates it. Returns the
 * module's path.
 */
async function writeDaemonShim(): Promise<string> {
  const module = `// Generated by tools/build.ts: engine/daemon.ts in the single-file build.

/** Starts the comment at the end of this file that carries the daemon's bundle. */
const MARKER = ${JSON.stringify(DAEMON_MARKER)};

/** engine/daemon.ts's \`runDaemon\`, from the bundle at the end of this file. */
export async function runDaemon(args: string[]): Promise<number> {
  const file = await Deno.readTextFile(new URL(import.meta.url));
  const start = file.lastIndexOf(MARKER) + MARKER.length;
  const end = file.indexOf("\\n", start);
  if (start < MARKER.length || end < 0) throw new Error(\`\${import.meta.url} carries no daemon\`);
  const compressed = Uint8Array.fromBase64(file.slice(start, end));
  const source = await new Response(
    new Blob([compressed]).stream().pipeThrough(new DecompressionStream("brotli")),
  ).text();
  // The daemon's start needs node:sqlite alone. Anything else it requires (the CRI's gRPC
  // server, a TLS listener) comes from process.getBuiltinModule, which loads Deno's Node
  // compatibility layer (about 10 MB of RSS) on first use, so only when such a part starts.
  const builtins = new Map<string, unknown>([["node:sqlite", await import("node:sqlite")]]);
  const require = (specifier: string) =>
    builtins.get(specifier) ??
      (globalThis as unknown as {
        process: { getBuiltinModule(id: string): unknown };
      }).process.getBuiltinModule(specifier);
  const module = { exports: {} as { runDaemon?: (args: string[]) => Promise<number> } };
  // Strict, as the modules were; named so that stack traces say where they come from.
  const evaluate = new Function(
    "require",
    "module",
    "exports",
    \`"use strict";\\n\${source}\\n//# sourceURL=pouch-daemon.js\`,
  );
  evaluate(require, module, module.exports);
  return await module.exports.runDaemon!(args);
}
`;
  const path = `${STAMP_DIR}/daemon.ts`;
  await Deno.writeTextFile(path, module);
  return path;
}

/** `a` then `b`, in one array. */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(a.length + b.length);
  bytes.set(a);
  bytes.set(b, a.length);
  return bytes;
}

/**
 * Writes `dist/.stamp/NAME_import_map.json`: deno.json's imports plus `redirects` (checkout
 * path to file path) for the bundler. Returns its path.
 */
async function writeImportMap(name: string, redirects: Record<string, string>): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as {
    imports?: Record<string, string>;
  };
  const imports: Record<string, string> = { ...config.imports };
  for (const [from, to] of Object.entries(redirects)) {
    imports[pathToFileURL(`${ROOT}${from}`).href] = pathToFileURL(to).href;
  }
  const path = `${STAMP_DIR}/${name}_import_map.json`;
  await Deno.writeTextFile(path, JSON.stringify({ imports }, null, 2) + "\n");
  return path;
}

/** Runs `deno ARGS` in the checkout; resolves with its stdout, rejects with its stderr. */
async function run(args: string[]): Promise<Uint8Array> {
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr);
    throw new Error(`deno ${args.join(" ")} failed:\n${stderr}`);
  }
  return result.stdout;
}

/** Runs git in the checkout; resolves with its trimmed output, or undefined when it fails. */
async function git(args: string[]): Promise<string | undefined> {
  try {
    const result = await new Deno.Command("git", {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return result.success ? new TextDecoder().decode(result.stdout).trim() : undefined;
  } catch {
    // No git on this machine: build without a commit.
    return undefined;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { output: { type: "string", short: "o" }, compile: { type: "boolean" } },
  });
  const output = values.output ?? DEFAULT_OUTPUT;
  const stamp = await build({ output, compile: values.compile });
  const { size } = await Deno.stat(output);
  const commit = stamp.gitCommit || "no commit";
  Deno.stdout.writeSync(
    new TextEncoder().encode(`wrote ${output} (${size} bytes, ${commit}, ${stamp.buildTime})\n`),
  );
}
