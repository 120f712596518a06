/**
 * The pouch CLI: global flags, the command table, and {@link runCli}, which `main.ts` calls
 * with the arguments and exits with the code it answers. The CLI talks only to the daemon's
 * HTTP API over its unix socket.
 *
 * @module
 */

import { ApiClient, DEFAULT_HOST, resolveTls } from "./client.ts";
import { type Command, type CommandContext, errorText, helpFlag, type Stdin } from "./command.ts";
import { Flags, type FlagSpec, flagUsages, parseFlags, UsageError } from "./flags.ts";
import { writeAll, type Writer } from "./stream.ts";

/** Options of {@link runCli}: where input and output go (tests capture them). */
export interface RunCliOptions {
  /** Standard output (default `Deno.stdout`). */
  stdout?: Writer;
  /** Standard error (default `Deno.stderr`). */
  stderr?: Writer;
  /** Standard input (default `Deno.stdin`). */
  stdin?: Stdin;
  /** The environment (default `Deno.env`). */
  env?: Record<string, string>;
}

const globalFlags: FlagSpec[] = [
  {
    name: "host",
    short: "H",
    kind: "string",
    description: "Daemon socket to connect to",
    default: DEFAULT_HOST,
  },
  { name: "debug", short: "D", kind: "bool", description: "Enable debug mode" },
  { name: "tls", kind: "bool", description: "Use TLS; implied by --tlsverify" },
  { name: "tlsverify", kind: "bool", description: "Use TLS and verify the remote" },
  {
    name: "tlscacert",
    kind: "string",
    description: "Trust certs signed by this CA (default $DOCKER_CERT_PATH/ca.pem)",
  },
  {
    name: "tlscert",
    kind: "string",
    description: "Path to TLS certificate file (default $DOCKER_CERT_PATH/cert.pem)",
  },
  {
    name: "tlskey",
    kind: "string",
    description: "Path to TLS key file (default $DOCKER_CERT_PATH/key.pem)",
  },
  { name: "version", short: "v", kind: "bool", description: "Print version information and quit" },
  { name: "help", short: "h", kind: "bool", description: "Print usage" },
];

/**
 * A command as the command table knows it: what usage texts and dispatch need, and how to load
 * the rest. Only the module of the command that runs is loaded (and its top level evaluated):
 * loading every command's module would cost each start-up a few milliseconds. `cmd/mod_test.ts`
 * checks that the table says what the modules do.
 */
export interface CommandEntry {
  /** The command's name, as the module names it. */
  name: string;
  /** Its other names, as the module has them. */
  aliases?: string[];
  /** Its one line of description, as the module has it. */
  description: string;
  /** Loads the command's module; resolves with the command. */
  load(): Promise<Command>;
}

/** A group of commands (`container`, `image`) as the command table knows it. */
export interface CommandGroupEntry {
  /** The group's name. */
  name: string;
  /** One line of description. */
  description: string;
  /** Its sub-commands. */
  commands: CommandEntry[];
}

/**
 * The entries of the commands that `commands` loads (one module's list), each given as its name
 * and description, then its aliases if it has any.
 */
function entries(
  commands: () => Promise<Command[]>,
  table: Array<[name: string, description: string, aliases?: string[]]>,
): CommandEntry[] {
  return table.map(([name, description, aliases]) => ({
    name,
    description,
    ...(aliases ? { aliases } : {}),
    load: async () => (await commands()).find((c) => c.name === name)!,
  }));
}

const containerEntries = entries(async () => (await import("./container.ts")).containerCommands, [
  ["create", "Create a new container"],
  ["run", "Create and run a new container from an image"],
  ["start", "Start one or more stopped containers"],
  ["stop", "Stop one or more running containers"],
  ["restart", "Restart one or more containers"],
  ["kill", "Kill one or more running containers"],
  ["rm", "Remove one or more containers"],
  ["pause", "Pause all processes within one or more containers"],
  ["unpause", "Unpause all processes within one or more containers"],
  ["wait", "Block until one or more containers stop, then print their exit codes"],
  ["rename", "Rename a container"],
  ["logs", "Fetch the logs of a container"],
  ["inspect", "Return low-level information on containers or images"],
  ["ps", "List containers"],
]);

const containerGroupEntries = entries(
  async () => (await import("./container.ts")).containerGroupCommands,
  [
    ["create", "Create a new container"],
    ["run", "Create and run a new container from an image"],
    ["start", "Start one or more stopped containers"],
    ["stop", "Stop one or more running containers"],
    ["restart", "Restart one or more containers"],
    ["kill", "Kill one or more running containers"],
    ["rm", "Remove one or more containers", ["remove"]],
    ["pause", "Pause all processes within one or more containers"],
    ["unpause", "Unpause all processes within one or more containers"],
    ["wait", "Block until one or more containers stop, then print their exit codes"],
    ["rename", "Rename a container"],
    ["logs", "Fetch the logs of a container"],
    ["inspect", "Display detailed information on one or more containers"],
    ["ls", "List containers", ["ps", "list"]],
  ],
);

const attachEntries = entries(async () => (await import("./attach.ts")).attachCommands, [
  ["exec", "Execute a command in a running container"],
  ["attach", "Attach local standard input, output, and error streams to a running container"],
]);

const monitorCommands = async () => {
  const m = await import("./monitor.ts");
  return [m.topCommand, m.statsCommand, m.portCommand, m.diffCommand, m.eventsCommand];
};

/** Commands that look into containers: in the `container` group and at the top level. */
const inspectionEntries = [
  ...entries(async () => [(await import("./cp.ts")).cpCommand], [
    ["cp", "Copy files/folders between a container and the local filesystem"],
  ]),
  ...entries(monitorCommands, [
    ["top", "Display the running processes of a container"],
    ["stats", "Display a live stream of container(s) resource usage statistics"],
    ["port", "List port mappings or a specific mapping for the container"],
    ["diff", "Inspect changes to files or directories on a container's filesystem"],
  ]),
];

const eventsEntries = entries(monitorCommands, [[
  "events",
  "Get real time events from the server",
]]);

const imageEntries = entries(async () => (await import("./image.ts")).imageCommands, [
  ["images", "List images"],
  ["rmi", "Remove one or more images"],
  ["tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"],
  ["load", "Load an image from a tar archive or STDIN"],
  ["import", "Import the contents from a tarball to create a filesystem image"],
  ["pull", "Download an image from a registry"],
  ["push", "Upload an image to a registry"],
  ["save", "Save one or more images to a tar archive (streamed to STDOUT by default)"],
  ["login", "Log in to a registry"],
  ["logout", "Log out from a registry"],
]);

const imageGroupEntries = entries(async () => (await import("./image.ts")).imageGroupCommands, [
  ["ls", "List images", ["images", "list"]],
  ["rm", "Remove one or more images", ["rmi", "remove"]],
  ["tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"],
  ["load", "Load an image from a tar archive or STDIN"],
  ["import", "Import the contents from a tarball to create a filesystem image"],
  ["inspect", "Display detailed information on one or more images"],
  ["pull", "Download an image from a registry"],
  ["push", "Upload an image to a registry"],
  ["save", "Save one or more images to a tar archive (streamed to STDOUT by default)"],
]);

const systemCommands = async () => (await import("./system.ts")).systemCommands;

const groups: CommandGroupEntry[] = [
  {
    name: "container",
    description: "Manage containers",
    commands: [...containerGroupEntries, ...attachEntries, ...inspectionEntries],
  },
  { name: "image", description: "Manage images", commands: imageGroupEntries },
  {
    name: "volume",
    description: "Manage volumes",
    commands: entries(async () => (await import("./volume.ts")).volumeGroupCommands, [
      ["create", "Create a volume"],
      ["ls", "List volumes", ["list"]],
      ["inspect", "Display detailed information on one or more volumes"],
      ["rm", "Remove one or more volumes", ["remove"]],
      ["prune", "Remove all unused volumes"],
    ]),
  },
  {
    name: "network",
    description: "Manage networks",
    commands: entries(async () => (await import("./network.ts")).networkGroupCommands, [
      ["create", "Create a network"],
      ["ls", "List networks", ["list"]],
      ["inspect", "Display detailed information on one or more networks"],
      ["rm", "Remove one or more networks", ["remove"]],
      ["prune", "Remove all unused networks"],
      ["connect", "Connect a container to a network"],
      ["disconnect", "Disconnect a container from a network"],
    ]),
  },
  {
    name: "system",
    description: "Manage pouch",
    commands: [
      ...entries(async () => (await import("./disk.ts")).diskCommands, [
        ["df", "Show pouch disk usage"],
        ["prune", "Remove unused data"],
      ]),
      ...entries(systemCommands, [["info", "Display system-wide information"]]),
      ...eventsEntries,
    ],
  },
];

const topLevel: CommandEntry[] = [
  ...containerEntries,
  ...attachEntries,
  ...inspectionEntries,
  ...imageEntries,
  ...entries(systemCommands, [
    ["version", "Show the pouch version information"],
    ["info", "Display system-wide information"],
  ]),
  ...eventsEntries,
  ...entries(async () => [(await import("./lxcfs.ts")).remountLxcfsCommand], [
    ["remount-lxcfs", "Remount lxcfs's /proc files in the running containers that use lxcfs"],
  ]),
  ...entries(async () => [(await import("./upgrade.ts")).upgradeCommand], [
    ["upgrade", "Upgrade a container's image in place, keeping its ID, IP, volumes and config"],
  ]),
  ...entries(async () => [(await import("./update.ts")).updateCommand], [
    ["update", "Update configuration of one or more containers"],
  ]),
];

/** The command table: the top-level commands, then each group's. */
export const commandTable: { topLevel: CommandEntry[]; groups: CommandGroupEntry[] } = {
  topLevel,
  groups,
};

function findCommand(commands: CommandEntry[], name: string): CommandEntry | undefined {
  return commands.find((c) => c.name === name || (c.aliases ?? []).includes(name));
}

function mainUsage(): string {
  const width = Math.max(...[...topLevel, ...groups].map((c) => c.name.length)) + 2;
  const list = (items: Array<{ name: string; description: string }>) =>
    items.map((c) => `  ${c.name.padEnd(width)}${c.description}`).join("\n");
  return [
    "Usage:  pouch [OPTIONS] COMMAND",
    "",
    "An efficient container engine",
    "",
    "Management Commands:",
    list(groups),
    "",
    "Commands:",
    list(topLevel),
    "",
    "Global Options:",
    flagUsages(globalFlags),
    "",
    "Run 'pouch COMMAND --help' for more information on a command.",
    "",
  ].join("\n");
}

function groupUsage(group: CommandGroupEntry): string {
  const width = Math.max(...group.commands.map((c) => c.name.length)) + 2;
  return [
    `Usage:  pouch ${group.name} COMMAND`,
    "",
    group.description,
    "",
    "Commands:",
    ...group.commands.map((c) => `  ${c.name.padEnd(width)}${c.description}`),
    "",
    `Run 'pouch ${group.name} COMMAND --help' for more information on a command.`,
    "",
  ].join("\n");
}

function commandUsage(command: Command, specs: FlagSpec[]): string {
  const aliases = command.aliases?.length
    ? `\nAliases:\n  ${[command.name, ...command.aliases].join(", ")}\n`
    : "";
  return [
    `Usage:  pouch ${command.usage}`,
    "",
    command.description,
    aliases,
    "Options:",
    flagUsages(specs),
    "",
  ].join("\n");
}

function argCountError(command: Command, path: string, count: number): string | undefined {
  const plural = (n: number) => (n === 1 ? "argument" : "arguments");
  const { minArgs, maxArgs } = command;
  if (minArgs !== undefined && maxArgs !== undefined && minArgs === maxArgs && count !== minArgs) {
    return `"pouch ${path}" requires exactly ${minArgs} ${plural(minArgs)}.`;
  }
  if (minArgs !== undefined && count < minArgs) {
    return `"pouch ${path}" requires at least ${minArgs} ${plural(minArgs)}.`;
  }
  if (maxArgs !== undefined && count > maxArgs) {
    return maxArgs === 0
      ? `"pouch ${path}" accepts no arguments.`
      : `"pouch ${path}" requires at most ${maxArgs} ${plural(maxArgs)}.`;
  }
  return undefined;
}

function defaultStdin(): Stdin {
  return {
    read: (p) => Deno.stdin.read(p),
    isTerminal: () => Deno.stdin.isTerminal(),
    setRaw: (mode, options) => Deno.stdin.setRaw(mode, options),
  };
}

function proxySignals(handler: (signal: string) => void): () => void {
  const signals = ["SIGINT", "SIGTERM"] as const;
  const listeners = signals.map((signal) => {
    const listener = () => handler(signal);
    Deno.addSignalListener(signal, listener);
    return listener;
  });
  return () => signals.forEach((signal, i) => Deno.removeSignalListener(signal, listeners[i]!));
}

function onWindowChange(handler: () => void): () => void {
  Deno.addSignalListener("SIGWINCH", handler);
  return () => Deno.removeSignalListener("SIGWINCH", handler);
}

/**
 * Runs the CLI with `args` (without the program name) and resolves to the exit code.
 */
export async function runCli(args: string[], options: RunCliOptions = {}): Promise<number> {
  const stdout = options.stdout ?? Deno.stdout;
  const stderr = options.stderr ?? Deno.stderr;
  const envRecord = options.env;
  const env = (key: string) => envRecord ? envRecord[key] : Deno.env.get(key);

  // Global flags, up to the command's name.
  let global: Flags;
  try {
    global = new Flags(parseFlags(args, globalFlags, { interspersed: false }), globalFlags);
  } catch (error) {
    await writeAll(stderr, `${errorText(error)}\nSee 'pouch --help'.\n`);
    return 1;
  }
  if (global.bool("version")) {
    const { CLIENT_VERSION } = await import("./system.ts");
    await writeAll(stdout, `pouch version ${CLIENT_VERSION}\n`);
    return 0;
  }
  const [name, ...rest] = global.args;
  if (name === undefined || global.bool("help") || name === "help") {
    await writeAll(name === undefined && !global.bool("help") ? stderr : stdout, mainUsage());
    return 0;
  }

  // The command, possibly inside a group.
  let entry: CommandEntry | undefined;
  let path = name;
  let commandArgs = rest;
  const group = groups.find((g) => g.name === name);
  if (group) {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      await writeAll(stdout, groupUsage(group));
      return 0;
    }
    entry = findCommand(group.commands, sub);
    path = `${name} ${sub}`;
    commandArgs = subArgs;
    if (!entry) {
      await writeAll(
        stderr,
        `pouch: '${path}' is not a pouch command.\nSee 'pouch ${name} --help'.\n`,
      );
      return 1;
    }
  } else {
    entry = findCommand(topLevel, name);
    if (!entry) {
      await writeAll(stderr, `pouch: '${name}' is not a pouch command.\nSee 'pouch --help'.\n`);
      return 1;
    }
  }

  const command = await entry.load();
  const errorExit = command.errorExitCode ?? 1;
  const specs = [...command.flags, helpFlag(command.flags)];
  const usageFailure = async (message: string): Promise<number> => {
    await writeAll(stderr, `${message}\nSee 'pouch ${path} --help'.\n`);
    return errorExit;
  };

  let flags: Flags;
  try {
    flags = new Flags(
      parseFlags(commandArgs, specs, { interspersed: !command.stopAtFirstArg }),
      specs,
    );
  } catch (error) {
    if (error instanceof UsageError) return await usageFailure(error.message);
    throw error;
  }
  if (flags.bool("help")) {
    await writeAll(stdout, commandUsage(command, specs));
    return 0;
  }
  const countError = argCountError(command, path, flags.args.length);
  if (countError) {
    await writeAll(
      stderr,
      `${countError}\nSee 'pouch ${path} --help'.\n\nUsage:  pouch ${command.usage}\n\n${command.description}\n`,
    );
    return errorExit;
  }

  let client: ApiClient;
  try {
    // As the Docker CLI: the flags default from DOCKER_TLS, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH.
    const fromEnv = (name: string) => (env(`POUCH_${name}`) ?? env(`DOCKER_${name}`)) || undefined;
    const flagOrEnv = (flag: string, name: string) =>
      global.has(flag) ? global.bool(flag) : fromEnv(name) !== undefined;
    const tls = resolveTls({
      tls: flagOrEnv("tls", "TLS"),
      verify: flagOrEnv("tlsverify", "TLS_VERIFY"),
      caCert: global.string("tlscacert"),
      cert: global.string("tlscert"),
      key: global.string("tlskey"),
      certPath: fromEnv("CERT_PATH") ?? `${env("HOME") ?? ""}/.docker`,
    });
    client = new ApiClient(
      global.string("host") ?? env("POUCH_HOST") ?? env("DOCKER_HOST") ?? DEFAULT_HOST,
      {
        debug: global.bool("debug")
          ? (line) => void writeAll(stderr, `DEBU[cli] ${line}\n`)
          : undefined,
        tls,
      },
    );
  } catch (error) {
    await writeAll(stderr, `${errorText(error)}\n`);
    return 1;
  }

  const ctx: CommandContext = {
    stdout,
    stderr,
    stdin: options.stdin ?? defaultStdin(),
    env,
    client,
    debug: global.bool("debug"),
    readTextFile: (file) => Deno.readTextFileSync(file),
    onSignal: options.stdout ? undefined : proxySignals,
    onResize: options.stdout ? undefined : onWindowChange,
    consoleSize: options.stdout ? undefined : () => {
      try {
        return Deno.consoleSize();
      } catch {
        return undefined;
      }
    },
  };
  try {
    return await command.run(ctx, flags);
  } catch (error) {
    // Output piped into a reader that went away (`pouch logs x | head`): stop quietly.
    if (error instanceof Deno.errors.BrokenPipe) return errorExit;
    if (error instanceof UsageError) return await usageFailure(error.message);
    // Daemon errors, connection failures and local failures (a missing --env-file) alike.
    await writeAll(stderr, errorText(error) + "\n");
    return errorExit;
  }
}
