/**
 * Volume commands: `volume create`, `ls`, `inspect`, `rm` and `prune`.
 *
 * @module
 */

import { type Command, forEachArg, out } from "./command.ts";
import { buildFilters, printInspect } from "./container.ts";
import { parseLabels, UsageError } from "./flags.ts";
import { humanSize, tabulate } from "./format.ts";

/** An item of `GET /volumes`'s `Volumes`. */
export interface VolumeSummary {
  Name: string;
  Driver: string;
  Mountpoint?: string;
}

const enc = encodeURIComponent;

/** Parses `--opt k=v` entries into driver options; throws a usage error on a missing `=`. */
export function parseOpts(entries: string[]): Record<string, string> {
  const options: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new UsageError(`invalid option '${entry}': expected key=value`);
    options[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return options;
}

const createCommand: Command = {
  name: "create",
  usage: "volume create [OPTIONS] [VOLUME]",
  description: "Create a volume",
  flags: [
    { name: "driver", short: "d", kind: "string", description: "Volume driver name" },
    { name: "opt", short: "o", kind: "list", description: "Set driver specific options" },
    { name: "label", kind: "list", description: "Set metadata for a volume" },
    { name: "name", kind: "string", description: "Volume name" },
  ],
  maxArgs: 1,
  async run(ctx, flags) {
    const name = flags.args[0] ?? flags.string("name") ?? "";
    const volume = await ctx.client.json<VolumeSummary>("POST", "/volumes/create", {
      json: {
        Name: name,
        Driver: flags.string("driver") || "local",
        DriverOpts: parseOpts(flags.list("opt")),
        Labels: parseLabels(flags.list("label")),
      },
    });
    await out(ctx, `${volume.Name}\n`);
    return 0;
  },
};

const lsCommand: Command = {
  name: "ls",
  aliases: ["list"],
  usage: "volume ls [OPTIONS]",
  description: "List volumes",
  flags: [
    { name: "quiet", short: "q", kind: "bool", description: "Only display volume names" },
    {
      name: "filter",
      short: "f",
      kind: "list",
      description: "Provide filter values (e.g. 'dangling=true')",
    },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    const answer = await ctx.client.json<{ Volumes: VolumeSummary[] | null }>("GET", "/volumes", {
      query: { filters: buildFilters(flags.list("filter")) },
    });
    const volumes = (answer.Volumes ?? []).sort((a, b) => a.Name.localeCompare(b.Name));
    if (flags.bool("quiet")) {
      await out(ctx, volumes.map((v) => `${v.Name}\n`).join(""));
      return 0;
    }
    await out(
      ctx,
      tabulate([["DRIVER", "VOLUME NAME"], ...volumes.map((v) => [v.Driver, v.Name])]),
    );
    return 0;
  },
};

const inspectCommand: Command = {
  name: "inspect",
  usage: "volume inspect [OPTIONS] VOLUME [VOLUME...]",
  description: "Display detailed information on one or more volumes",
  flags: [{
    name: "format",
    short: "f",
    kind: "string",
    description: "Format using a Go template",
  }],
  minArgs: 1,
  run(ctx, flags) {
    return printInspect(ctx, flags.args, {
      format: flags.string("format"),
      fetch: (name) => ctx.client.json("GET", `/volumes/${enc(name)}`),
      noun: "volume",
    });
  },
};

const rmCommand: Command = {
  name: "rm",
  aliases: ["remove"],
  usage: "volume rm [OPTIONS] VOLUME [VOLUME...]",
  description: "Remove one or more volumes",
  flags: [{ name: "force", short: "f", kind: "bool", description: "Force the removal" }],
  minArgs: 1,
  run(ctx, flags) {
    return forEachArg(ctx, flags.args, async (name) => {
      await ctx.client.call("DELETE", `/volumes/${enc(name)}`, {
        query: { force: flags.bool("force") || undefined },
      });
      await out(ctx, `${name}\n`);
    });
  },
};

const pruneCommand: Command = {
  name: "prune",
  usage: "volume prune [OPTIONS]",
  description: "Remove all unused volumes",
  flags: [
    { name: "force", short: "f", kind: "bool", description: "Do not prompt for confirmation" },
    { name: "filter", kind: "list", description: "Provide filter values (e.g. 'label=<label>')" },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    if (!flags.bool("force")) {
      // Without a terminal to ask on, pruning silently would surprise: demand -f.
      throw new UsageError("volume prune removes all unused volumes: confirm with -f/--force");
    }
    const answer = await ctx.client.json<
      { VolumesDeleted: string[] | null; SpaceReclaimed: number }
    >(
      "POST",
      "/volumes/prune",
      { query: { filters: buildFilters(flags.list("filter")) } },
    );
    const deleted = answer.VolumesDeleted ?? [];
    if (deleted.length > 0) await out(ctx, `Deleted Volumes:\n${deleted.join("\n")}\n\n`);
    await out(ctx, `Total reclaimed space: ${humanSize(answer.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};

/** The `volume` group. */
export const volumeGroupCommands: Command[] = [
  createCommand,
  lsCommand,
  inspectCommand,
  rmCommand,
  pruneCommand,
];
