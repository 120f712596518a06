/**
 * Image commands: images, rmi, tag, load, import, pull, push, save, login, logout, and
 * `image inspect`.
 *
 * @module
 */

import { ApiError, jsonMessages } from "./client.ts";
import {
  authHeaderFor,
  authKey,
  configPath,
  ProgressDisplay,
  pullImage,
  readConfigFile,
  showMessages,
  stdoutIsTerminal,
  writeConfigFile,
} from "./registry.ts";
import { type Command, type CommandContext, err, forEachArg, out } from "./command.ts";
import { fetchObject, printInspect } from "./container.ts";
import { UsageError } from "./flags.ts";
import { humanSize, parseFormat, renderRows, shortId, timeAgo } from "./format.ts";
import { sourceToStream } from "./stream.ts";

/** An item of `GET /images/json`. */
export interface ImageSummary {
  Id: string;
  ParentId?: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Created?: number;
  Size?: number;
  Labels?: Record<string, string> | null;
  Containers?: number;
}

const enc = encodeURIComponent;

/** Splits `repo:tag` (the colon after the last slash); no tag -> undefined. */
export function splitReference(ref: string): { repo: string; tag?: string } {
  const at = ref.indexOf("@");
  if (at >= 0) return { repo: ref.slice(0, at) };
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref };
}

/** Options of {@link imageRows}. */
export interface ImageRowOptions {
  /** `--no-trunc`. */
  noTrunc: boolean;
  /** Now, in ms (tests pin it). */
  now?: number;
}

/** Images as the rows Docker's `images` shows: one per tag, `<none>` for untagged. */
export function imageRows(
  images: ImageSummary[],
  options: ImageRowOptions,
): Array<Record<string, string>> {
  const rows: Array<Record<string, string>> = [];
  for (const image of images) {
    const id = options.noTrunc ? image.Id : shortId(image.Id);
    const digests = image.RepoDigests ?? [];
    const digestOf = (repo: string) =>
      digests.find((d) => d.startsWith(repo + "@"))?.split("@")[1] ?? "<none>";
    const tags = (image.RepoTags ?? []).filter((t) => t !== "<none>:<none>");
    const base = {
      ID: id,
      CreatedSince: timeAgo(image.Created ?? 0, options.now),
      CreatedAt: new Date((image.Created ?? 0) * 1000).toISOString(),
      Size: humanSize(image.Size ?? 0),
      Containers: String(image.Containers ?? "N/A"),
    };
    if (tags.length === 0) {
      const repo = digests[0]?.split("@")[0] ?? "<none>";
      rows.push({
        Repository: repo,
        Tag: "<none>",
        Digest: digests[0]?.split("@")[1] ?? "<none>",
        ...base,
      });
      continue;
    }
    for (const tag of tags) {
      const ref = splitReference(tag);
      rows.push({
        Repository: ref.repo,
        Tag: ref.tag ?? "<none>",
        Digest: digestOf(ref.repo),
        ...base,
      });
    }
  }
  return rows;
}

const imageHeaders: Record<string, string> = {
  Repository: "REPOSITORY",
  Tag: "TAG",
  Digest: "DIGEST",
  ID: "IMAGE ID",
  CreatedSince: "CREATED",
  CreatedAt: "CREATED AT",
  Size: "SIZE",
  Containers: "CONTAINERS",
};

const imagesCommand: Command = {
  name: "images",
  usage: "images [OPTIONS] [REPOSITORY[:TAG]]",
  description: "List images",
  flags: [
    {
      name: "all",
      short: "a",
      kind: "bool",
      description: "Show all images (default hides intermediate images)",
    },
    { name: "quiet", short: "q", kind: "bool", description: "Only show image IDs" },
    { name: "digests", kind: "bool", description: "Show digests" },
    { name: "no-trunc", kind: "bool", description: "Don't truncate output" },
    {
      name: "filter",
      short: "f",
      kind: "list",
      description: "Filter output based on conditions provided",
    },
    {
      name: "format",
      kind: "string",
      description: "Format output using a custom template: 'table', 'json' or a Go template",
    },
  ],
  maxArgs: 1,
  async run(ctx, flags) {
    const filters: Record<string, Record<string, boolean>> = {};
    for (const entry of flags.list("filter")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) throw new UsageError("bad format of filter (expected name=value)");
      (filters[entry.slice(0, eq).toLowerCase()] ??= {})[entry.slice(eq + 1)] = true;
    }
    if (flags.args[0] !== undefined) (filters.reference ??= {})[flags.args[0]] = true;
    const images = await ctx.client.json<ImageSummary[]>("GET", "/images/json", {
      query: {
        all: flags.bool("all") || undefined,
        digests: flags.bool("digests") || undefined,
        filters: Object.keys(filters).length > 0 ? JSON.stringify(filters) : undefined,
      },
    });
    const rows = imageRows(images, { noTrunc: flags.bool("no-trunc") });
    if (flags.bool("quiet")) {
      const ids = [...new Set(rows.map((r) => r.ID!))];
      await out(ctx, ids.map((id) => id + "\n").join(""));
      return 0;
    }
    const defaultTable = flags.bool("digests")
      ? "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
      : "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    await out(
      ctx,
      renderRows(rows, parseFormat(flags.string("format")), {
        headers: imageHeaders,
        defaultTable,
      }),
    );
    return 0;
  },
};

const rmiFlags = [
  { name: "force", short: "f", kind: "bool", description: "Force removal of the image" },
  { name: "no-prune", kind: "bool", description: "Do not delete untagged parents" },
] as const;

const rmiCommand: Command = {
  name: "rmi",
  usage: "rmi [OPTIONS] IMAGE [IMAGE...]",
  description: "Remove one or more images",
  flags: [...rmiFlags],
  minArgs: 1,
  run(ctx, flags) {
    const query = {
      force: flags.bool("force") || undefined,
      noprune: flags.bool("no-prune") || undefined,
    };
    return forEachArg(ctx, flags.args, async (name) => {
      const items = await ctx.client.json<Array<{ Untagged?: string; Deleted?: string }>>(
        "DELETE",
        `/images/${enc(name)}`,
        { query },
      );
      for (const item of items ?? []) {
        if (item.Untagged) await out(ctx, `Untagged: ${item.Untagged}\n`);
        if (item.Deleted) await out(ctx, `Deleted: ${item.Deleted}\n`);
      }
    });
  },
};

const tagCommand: Command = {
  name: "tag",
  usage: "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
  description: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
  flags: [],
  minArgs: 2,
  maxArgs: 2,
  async run(ctx, flags) {
    const [source, target] = flags.args as [string, string];
    const ref = splitReference(target);
    await ctx.client.call("POST", `/images/${enc(source)}/tag`, {
      query: { repo: ref.repo, tag: ref.tag ?? "latest" },
    });
    return 0;
  },
};

/** Prints a JSON message stream (load, import): `stream` text, statuses, errors. */
async function printMessages(
  ctx: CommandContext,
  body: ReadableStream<Uint8Array>,
  options: { quiet: boolean },
): Promise<number> {
  for await (const raw of jsonMessages(body)) {
    const msg = raw as {
      stream?: string;
      status?: string;
      id?: string;
      progress?: string;
      error?: string;
      errorDetail?: { message?: string };
    };
    if (msg.error || msg.errorDetail?.message) {
      await err(ctx, `Error: ${msg.errorDetail?.message ?? msg.error}\n`);
      return 1;
    }
    if (msg.stream !== undefined) {
      await out(ctx, msg.stream);
    } else if (msg.status !== undefined && !options.quiet) {
      const prefix = msg.id ? `${msg.id}: ` : "";
      await out(ctx, `${prefix}${msg.status}${msg.progress ? " " + msg.progress : ""}\n`);
    }
  }
  return 0;
}

/** The body of an upload: a file, or stdin (refused when stdin is a terminal). */
async function uploadSource(
  ctx: CommandContext,
  file: string | undefined,
): Promise<ReadableStream<Uint8Array>> {
  if (file !== undefined && file !== "-") {
    const handle = await Deno.open(file, { read: true });
    return handle.readable;
  }
  if (ctx.stdin.isTerminal?.() === true) {
    throw new UsageError("requested load from stdin, but stdin is empty");
  }
  return sourceToStream(ctx.stdin);
}

const loadCommand: Command = {
  name: "load",
  usage: "load [OPTIONS]",
  description: "Load an image from a tar archive or STDIN",
  flags: [
    {
      name: "input",
      short: "i",
      kind: "string",
      description: "Read from tar archive file, instead of STDIN",
    },
    { name: "quiet", short: "q", kind: "bool", description: "Suppress the load output" },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    const body = await uploadSource(ctx, flags.string("input"));
    const quiet = flags.bool("quiet");
    const res = await ctx.client.request("POST", "/images/load", {
      query: { quiet: quiet || undefined },
      body,
      contentType: "application/x-tar",
    });
    const type = res.headers.get("content-type") ?? "";
    if (!type.includes("json")) {
      await out(ctx, await new Response(res.body).text());
      return 0;
    }
    // Per-layer bars in a terminal, plain lines otherwise, as pull and push show them.
    const display = new ProgressDisplay(ctx.stdout, { tty: !quiet && stdoutIsTerminal(ctx) });
    const failure = await showMessages(res.body, display);
    if (failure !== undefined) {
      await err(ctx, `Error: ${failure}\n`);
      return 1;
    }
    return 0;
  },
};

const importCommand: Command = {
  name: "import",
  usage: "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
  description: "Import the contents from a tarball to create a filesystem image",
  flags: [
    {
      name: "change",
      short: "c",
      kind: "list",
      description: "Apply Dockerfile instruction to the created image",
    },
    {
      name: "message",
      short: "m",
      kind: "string",
      description: "Set commit message for imported image",
    },
    {
      name: "platform",
      kind: "string",
      description: "Set platform if server is multi-platform capable",
    },
  ],
  minArgs: 1,
  maxArgs: 2,
  async run(ctx, flags) {
    const [source, reference] = flags.args as [string, string | undefined];
    const isUrl = /^https?:\/\//.test(source);
    const res = await ctx.client.request("POST", "/images/create", {
      query: {
        fromSrc: isUrl ? source : "-",
        repo: reference,
        message: flags.string("message"),
        changes: flags.list("change"),
        platform: flags.string("platform"),
      },
      body: isUrl ? undefined : await uploadSource(ctx, source),
      contentType: isUrl ? undefined : "application/x-tar",
    });
    return await printMessages(ctx, res.body, { quiet: false });
  },
};

const imageInspectCommand: Command = {
  name: "inspect",
  usage: "image inspect [OPTIONS] IMAGE [IMAGE...]",
  description: "Display detailed information on one or more images",
  flags: [{
    name: "format",
    short: "f",
    kind: "string",
    description: "Format output using a custom template",
  }],
  minArgs: 1,
  run(ctx, flags) {
    return printInspect(ctx, flags.args, {
      format: flags.string("format"),
      fetch: fetchObject(ctx.client, "image"),
      noun: "image",
    });
  },
};

const pullCommand: Command = {
  name: "pull",
  usage: "pull [OPTIONS] NAME[:TAG|@DIGEST]",
  description: "Download an image from a registry",
  flags: [
    { name: "quiet", short: "q", kind: "bool", description: "Suppress verbose output" },
    {
      name: "platform",
      kind: "string",
      description: "Set platform if server is multi-platform capable",
    },
    {
      name: "all-tags",
      short: "a",
      kind: "bool",
      description: "Download all tagged images (not supported)",
    },
  ],
  minArgs: 1,
  maxArgs: 1,
  async run(ctx, flags) {
    if (flags.bool("all-tags")) throw new UsageError("pull --all-tags is not supported");
    await pullImage(ctx, flags.args[0]!, {
      quiet: flags.bool("quiet"),
      platform: flags.string("platform"),
    });
    return 0;
  },
};

const pushCommand: Command = {
  name: "push",
  usage: "push [OPTIONS] NAME[:TAG]",
  description: "Upload an image to a registry",
  flags: [{ name: "quiet", short: "q", kind: "bool", description: "Suppress verbose output" }],
  minArgs: 1,
  maxArgs: 1,
  async run(ctx, flags) {
    const reference = flags.args[0]!;
    const { repo, tag } = splitReference(reference);
    const res = await ctx.client.request("POST", `/images/${enc(repo)}/push`, {
      query: { tag: tag ?? "latest" },
      headers: await authHeaderFor(ctx, reference),
    });
    const quiet = flags.bool("quiet");
    const display = new ProgressDisplay(
      quiet ? { write: (p) => Promise.resolve(p.length) } : ctx.stdout,
      { tty: !quiet && stdoutIsTerminal(ctx) },
    );
    const failure = await showMessages(res.body, display);
    if (failure !== undefined) throw new ApiError(failure, 500);
    if (quiet) await out(ctx, `${reference}\n`);
    return 0;
  },
};

const saveCommand: Command = {
  name: "save",
  usage: "save [OPTIONS] IMAGE [IMAGE...]",
  description: "Save one or more images to a tar archive (streamed to STDOUT by default)",
  flags: [{
    name: "output",
    short: "o",
    kind: "string",
    description: "Write to a file, instead of STDOUT",
  }],
  minArgs: 1,
  async run(ctx, flags) {
    const output = flags.string("output");
    if (output === undefined && stdoutIsTerminal(ctx)) {
      throw new UsageError(
        "cowardly refusing to save to a terminal. Use the -o flag or redirect",
      );
    }
    const res = await ctx.client.request("GET", "/images/get", { query: { names: flags.args } });
    if (output === undefined) {
      for await (const chunk of res.body) await writeChunk(ctx.stdout, chunk);
      return 0;
    }
    // Written beside the target and renamed, so a failed save leaves no truncated archive.
    const tmp = `${output}.tmp-${Deno.pid}`;
    try {
      const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      await res.body.pipeTo(file.writable);
      await Deno.rename(tmp, output);
    } catch (error) {
      await Deno.remove(tmp).catch(() => {});
      throw error;
    }
    return 0;
  },
};

async function writeChunk(writer: { write(p: Uint8Array): Promise<number> }, chunk: Uint8Array) {
  let written = 0;
  while (written < chunk.length) written += await writer.write(chunk.subarray(written));
}

/** Reads one line from stdin; with `hidden`, in raw mode without echo (a password). */
async function readLine(ctx: CommandContext, hidden: boolean): Promise<string> {
  const raw = hidden && ctx.stdin.isTerminal?.() === true && ctx.stdin.setRaw !== undefined;
  if (raw) ctx.stdin.setRaw!(true);
  try {
    const bytes: number[] = [];
    const buf = new Uint8Array(1);
    while (true) {
      const n = await ctx.stdin.read(buf);
      if (n === null || buf[0] === 0x0a || buf[0] === 0x0d) break;
      // Ctrl-C in raw mode arrives as a byte, not a signal.
      if (raw && buf[0] === 0x03) throw new UsageError("login cancelled");
      bytes.push(buf[0]!);
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  } finally {
    if (raw) {
      ctx.stdin.setRaw!(false);
      await out(ctx, "\n");
    }
  }
}

const loginCommand: Command = {
  name: "login",
  usage: "login [OPTIONS] [SERVER]",
  description: "Log in to a registry",
  flags: [
    { name: "username", short: "u", kind: "string", description: "Username" },
    { name: "password", short: "p", kind: "string", description: "Password" },
    { name: "password-stdin", kind: "bool", description: "Take the password from stdin" },
  ],
  maxArgs: 1,
  async run(ctx, flags) {
    const server = flags.args[0] ?? "docker.io";
    let username = flags.string("username");
    let password = flags.string("password");
    if (password !== undefined) {
      await err(ctx, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
    }
    if (flags.bool("password-stdin")) {
      if (password !== undefined) {
        throw new UsageError("--password and --password-stdin are mutually exclusive");
      }
      if (username === undefined) {
        throw new UsageError("Must provide --username with --password-stdin");
      }
      password = (await new Response(sourceToStream(ctx.stdin)).text()).replace(/\r?\n$/, "");
    }
    const interactive = ctx.stdin.isTerminal?.() === true;
    if (username === undefined) {
      if (!interactive) {
        throw new UsageError("Error: Cannot perform an interactive login from a non TTY device");
      }
      await out(ctx, "Username: ");
      username = (await readLine(ctx, false)).trim();
    }
    if (password === undefined) {
      if (!interactive) {
        throw new UsageError("Error: Cannot perform an interactive login from a non TTY device");
      }
      await out(ctx, "Password: ");
      password = await readLine(ctx, true);
    }
    if (!username || !password) throw new UsageError("Error: Username and password are required");
    const key = authKey(server);
    await ctx.client.json("POST", "/auth", {
      json: { username, password, serveraddress: key },
    });
    const path = configPath(ctx.env);
    const config = await readConfigFile(path);
    config.auths = { ...config.auths, [key]: { auth: btoa(`${username}:${password}`) } };
    await writeConfigFile(path, config);
    await out(ctx, "Login Succeeded\n");
    return 0;
  },
};

const logoutCommand: Command = {
  name: "logout",
  usage: "logout [SERVER]",
  description: "Log out from a registry",
  flags: [],
  maxArgs: 1,
  async run(ctx, flags) {
    const key = authKey(flags.args[0] ?? "docker.io");
    const path = configPath(ctx.env);
    const config = await readConfigFile(path);
    const auths = { ...config.auths };
    const found = [key, `https://${key}`, `http://${key}`].filter((k) => k in auths);
    if (found.length === 0) {
      await out(ctx, `Not logged in to ${key}\n`);
      return 0;
    }
    await out(ctx, `Removing login credentials for ${key}\n`);
    for (const k of found) delete auths[k];
    config.auths = auths;
    await writeConfigFile(path, config);
    return 0;
  },
};

/** Top-level image commands. */
export const imageCommands: Command[] = [
  imagesCommand,
  rmiCommand,
  tagCommand,
  loadCommand,
  importCommand,
  pullCommand,
  pushCommand,
  saveCommand,
  loginCommand,
  logoutCommand,
];

/** The `image` group: `ls`, `rm`, `tag`, `load`, `import`, `inspect`. */
export const imageGroupCommands: Command[] = [
  {
    ...imagesCommand,
    name: "ls",
    aliases: ["images", "list"],
    usage: "image ls [OPTIONS] [REPOSITORY[:TAG]]",
  },
  {
    ...rmiCommand,
    name: "rm",
    aliases: ["rmi", "remove"],
    usage: "image rm [OPTIONS] IMAGE [IMAGE...]",
  },
  tagCommand,
  loadCommand,
  importCommand,
  imageInspectCommand,
  pullCommand,
  pushCommand,
  saveCommand,
];
