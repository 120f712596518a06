/**
 * System commands: `version` and `info`.
 *
 * @module
 */

import { API_VERSION } from "./client.ts";
import { type Command, type CommandContext, out, printError } from "./command.ts";
import { Template } from "./template.ts";
import denoJson from "../deno.json" with { type: "json" };
// The one daemon module the CLI imports: constants only, stamped by the build for both halves.
import { BUILD_TIME, GIT_COMMIT } from "../engine/version.ts";

/** The CLI's own version. */
export const CLIENT_VERSION: string = denoJson.version;

/** Go's names for the architecture, as Docker reports it. */
function goArch(arch: string): string {
  return ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[arch] ?? arch;
}

/** The client half of `version`. */
export function clientVersion(): Record<string, string> {
  return {
    Version: CLIENT_VERSION,
    ApiVersion: API_VERSION,
    DenoVersion: Deno.version.deno,
    GitCommit: GIT_COMMIT,
    BuildTime: BUILD_TIME,
    Os: Deno.build.os,
    Arch: goArch(Deno.build.arch),
  };
}

/** `GET /version`'s answer (the parts shown). */
interface ServerVersion {
  Version?: string;
  ApiVersion?: string;
  MinAPIVersion?: string;
  GoVersion?: string;
  GitCommit?: string;
  BuildTime?: string;
  Os?: string;
  Arch?: string;
  KernelVersion?: string;
  Experimental?: boolean;
  Components?: Array<{ Name: string; Version: string; Details?: Record<string, string> }>;
}

function line(indent: string, label: string, value: string): string {
  return `${indent}${(label + ":").padEnd(19 - indent.length + 1)}${value}\n`;
}

/** Renders `version` as Docker does (client section, then server's engine and components). */
export function formatVersion(client: Record<string, string>, server?: ServerVersion): string {
  let text = "Client:\n";
  text += line(" ", "Version", client.Version ?? "");
  text += line(" ", "API version", client.ApiVersion ?? "");
  text += line(" ", "Deno version", client.DenoVersion ?? "");
  if (client.GitCommit) text += line(" ", "Git commit", client.GitCommit);
  if (client.BuildTime) text += line(" ", "Built", client.BuildTime);
  text += line(" ", "OS/Arch", `${client.Os}/${client.Arch}`);
  if (!server) return text;
  text += "\nServer:\n Engine:\n";
  text += line("  ", "Version", server.Version ?? "");
  const min = server.MinAPIVersion ? ` (minimum version ${server.MinAPIVersion})` : "";
  text += line("  ", "API version", (server.ApiVersion ?? "") + min);
  if (server.GoVersion) text += line("  ", "Go version", server.GoVersion);
  if (server.GitCommit) text += line("  ", "Git commit", server.GitCommit);
  if (server.BuildTime) text += line("  ", "Built", server.BuildTime);
  text += line("  ", "OS/Arch", `${server.Os ?? ""}/${server.Arch ?? ""}`);
  if (server.KernelVersion) text += line("  ", "Kernel version", server.KernelVersion);
  text += line("  ", "Experimental", String(server.Experimental ?? false));
  for (const component of server.Components ?? []) {
    if (component.Name === "Engine") continue;
    text += ` ${component.Name}:\n`;
    text += line("  ", "Version", component.Version);
    for (const [k, v] of Object.entries(component.Details ?? {})) text += line("  ", k, v);
  }
  return text;
}

const versionCommand: Command = {
  name: "version",
  usage: "version [OPTIONS]",
  description: "Show the pouch version information",
  flags: [{
    name: "format",
    short: "f",
    kind: "string",
    description: "Format output using a custom template",
  }],
  maxArgs: 0,
  async run(ctx, flags) {
    const client = clientVersion();
    let server: ServerVersion | undefined;
    let failure: unknown;
    try {
      server = await ctx.client.json<ServerVersion>("GET", "/version");
    } catch (error) {
      failure = error;
    }
    const format = flags.string("format");
    if (format) {
      await out(
        ctx,
        new Template(format).execute({ Client: client, Server: server ?? null }) + "\n",
      );
    } else {
      await out(ctx, formatVersion(client, server));
    }
    if (failure !== undefined) {
      if (!format) await out(ctx, "\n");
      await printError(ctx, failure);
      return 1;
    }
    return 0;
  },
};

/** Docker's `units.BytesSize`: binary units with 4 significant digits (`15.55GiB`). */
export function bytesSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let size = bytes;
  let i = 0;
  while (size >= 1024 && i < units.length - 1) {
    size /= 1024;
    i++;
  }
  return `${Number(size.toPrecision(4))}${units[i]}`;
}

/** The parts of `GET /info` shown. */
type Info = Record<string, unknown>;

function str(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (Array.isArray(v)) return v.join(", ");
  return String(v);
}

/** Renders `info`'s server section as Docker does. */
export function formatInfo(info: Info): string {
  const lines: string[] = ["Server:"];
  const add = (label: string, value: unknown) => {
    if (value === undefined || value === null || value === "") return;
    lines.push(` ${label}: ${str(value)}`);
  };
  lines.push(` Containers: ${str(info.Containers ?? 0)}`);
  lines.push(`  Running: ${str(info.ContainersRunning ?? 0)}`);
  lines.push(`  Paused: ${str(info.ContainersPaused ?? 0)}`);
  lines.push(`  Stopped: ${str(info.ContainersStopped ?? 0)}`);
  lines.push(` Images: ${str(info.Images ?? 0)}`);
  add("Server Version", info.ServerVersion);
  add("Storage Driver", info.Driver);
  add("Logging Driver", info.LoggingDriver);
  add("Cgroup Driver", info.CgroupDriver);
  add("Cgroup Version", info.CgroupVersion);
  const runtimes = info.Runtimes && typeof info.Runtimes === "object"
    ? Object.keys(info.Runtimes as object).join(" ")
    : undefined;
  add("Runtimes", runtimes);
  add("Default Runtime", info.DefaultRuntime);
  add("Kernel Version", info.KernelVersion);
  add("Operating System", info.OperatingSystem);
  add("OSType", info.OSType);
  add("Architecture", info.Architecture);
  add("CPUs", info.NCPU);
  if (typeof info.MemTotal === "number") add("Total Memory", bytesSize(info.MemTotal));
  add("Name", info.Name);
  add("ID", info.ID);
  add("Pouch Root Dir", info.DockerRootDir ?? info.PouchRootDir);
  lines.push(` Debug Mode: ${str(info.Debug ?? false)}`);
  add("Lxcfs Enabled", info.LxcfsEnabled);
  if (info.CriEnabled !== undefined) {
    add("CRI", info.CriEnabled ? `enabled (${str(info.CriListen)})` : "disabled");
  }
  add("Default Registry", info.DefaultRegistry);
  const labels = Array.isArray(info.Labels) ? info.Labels as string[] : [];
  if (labels.length > 0) {
    lines.push(" Labels:");
    for (const label of labels) lines.push(`  ${label}`);
  }
  lines.push(` Experimental: ${str(info.ExperimentalBuild ?? false)}`);
  const registries = info.RegistryConfig as {
    InsecureRegistryCIDRs?: string[];
    IndexConfigs?: Record<string, { Secure?: boolean }>;
  } | undefined;
  const insecure = [
    ...Object.entries(registries?.IndexConfigs ?? {}).filter(([, v]) => v.Secure === false).map((
      [k],
    ) => k),
    ...(registries?.InsecureRegistryCIDRs ?? []),
  ];
  if (insecure.length > 0) {
    lines.push(" Insecure Registries:");
    for (const r of insecure) lines.push(`  ${r}`);
  }
  // Docker Hub's mirrors, then other registries' (pouch mirrors any registry).
  const mirrors = [
    ...((registries as { Mirrors?: string[] } | undefined)?.Mirrors ?? []),
    ...Object.entries(
      (registries?.IndexConfigs ?? {}) as Record<string, { Mirrors?: string[] }>,
    ).filter(([host]) => host !== "docker.io")
      .flatMap(([host, v]) => (v.Mirrors ?? []).map((m) => `${host}: ${m}`)),
  ];
  if (mirrors.length > 0) {
    lines.push(" Registry Mirrors:");
    for (const m of mirrors) lines.push(`  ${m}`);
  }
  lines.push(` Live Restore Enabled: ${str(info.LiveRestoreEnabled ?? false)}`);
  for (const warning of (info.Warnings as string[] | null | undefined) ?? []) lines.push(warning);
  return lines.join("\n") + "\n";
}

const infoCommand: Command = {
  name: "info",
  usage: "info [OPTIONS]",
  description: "Display system-wide information",
  flags: [{
    name: "format",
    short: "f",
    kind: "string",
    description: "Format output using a custom template",
  }],
  maxArgs: 0,
  async run(ctx: CommandContext, flags) {
    const info = await ctx.client.json<Info>("GET", "/info");
    const format = flags.string("format");
    if (format) {
      await out(ctx, new Template(format).execute(info) + "\n");
      return 0;
    }
    await out(ctx, `Client:\n Version:    ${CLIENT_VERSION}\n\n`);
    await out(ctx, formatInfo(info));
    return 0;
  },
};

/** `version` and `info`. */
export const systemCommands: Command[] = [versionCommand, infoCommand];
