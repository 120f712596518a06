/**
 * The pouch CLI: global flags, the command table, and {@link runCli}, which `main.ts` calls
 * with the arguments and exits with the code it answers. The CLI talks only to the daemon's
 * HTTP API over its unix socket.
 *
 * @module
 */

import { attachCommands } from "./attach.ts";
import { ApiClient, DEFAULT_HOST, resolveTls } from "./client.ts";
import {
  type Command,
  type CommandContext,
  type CommandGroup,
  errorText,
  helpFlag,
  type Stdin,
} from "./command.ts";
import { containerCommands, containerGroupCommands } from "./container.ts";
import { cpCommand } from "./cp.ts";
import { diskCommands } from "./disk.ts";
import { Flags, type FlagSpec, flagUsages, parseFlags, UsageError } from "./flags.ts";
import { imageCommands, imageGroupCommands } from "./image.ts";
import { remountLxcfsCommand } from "./lxcfs.ts";
import { diffCommand, eventsCommand, portCommand, statsCommand, topCommand } from "./monitor.ts";
import { networkGroupCommands } from "./network.ts";
import { writeAll, type Writer } from "./stream.ts";
import { CLIENT_VERSION, systemCommands } from "./system.ts";
import { updateCommand } from "./update.ts";
import { upgradeCommand } from "./upgrade.ts";
import { volumeGroupCommands } from "./volume.ts";

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

/** Commands that look into containers: in the `container` group and at the top level. */
const inspectionCommands = [cpCommand, topCommand, statsCommand, portCommand, diffCommand];

const groups: CommandGroup[] = [
  {
    name: "container",
    description: "Manage containers",
    commands: [...containerGroupCommands, ...attachCommands, ...inspectionCommands],
  },
  { name: "image", description: "Manage images", commands: imageGroupCommands },
  { name: "volume", description: "Manage volumes", commands: volumeGroupCommands },
  { name: "network", description: "Manage networks", commands: networkGroupCommands },
  {
    name: "system",
    description: "Manage pouch",
    commands: [...diskCommands, ...systemCommands.filter((c) => c.name === "info"), eventsCommand],
  },
];

const topLevel: Command[] = [
  ...containerCommands,
  ...attachCommands,
  ...inspectionCommands,
  ...imageCommands,
  ...systemCommands,
  eventsCommand,
  remountLxcfsCommand,
  upgradeCommand,
  updateCommand,
];

function findCommand(commands: Command[], name: string): Command | undefined {
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

function groupUsage(group: CommandGroup): string {
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
    await writeAll(stdout, `pouch version ${CLIENT_VERSION}\n`);
    return 0;
  }
  const [name, ...rest] = global.args;
  if (name === undefined || global.bool("help") || name === "help") {
    await writeAll(name === undefined && !global.bool("help") ? stderr : stdout, mainUsage());
    return 0;
  }

  // The command, possibly inside a group.
  let command: Command | undefined;
  let path = name;
  let commandArgs = rest;
  const group = groups.find((g) => g.name === name);
  if (group) {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      await writeAll(stdout, groupUsage(group));
      return 0;
    }
    command = findCommand(group.commands, sub);
    path = `${name} ${sub}`;
    commandArgs = subArgs;
    if (!command) {
      await writeAll(
        stderr,
        `pouch: '${path}' is not a pouch command.\nSee 'pouch ${name} --help'.\n`,
      );
      return 1;
    }
  } else {
    command = findCommand(topLevel, name);
    if (!command) {
      await writeAll(stderr, `pouch: '${name}' is not a pouch command.\nSee 'pouch --help'.\n`);
      return 1;
    }
  }

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
