/**
 * `system df` and `system prune`: disk usage by images, containers and volumes, and removing
 * what nothing uses, with the Docker CLI's requests and output.
 *
 * @module
 */

import { type Command, err, out } from "./command.ts";
import type { ByteSource } from "./http.ts";
import { parseFormat, renderRows } from "./format.ts";

/** Docker's `units.HumanSize`: decimal units, 4 significant digits (`4.261MB`, `0B`). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < units.length - 1) {
    size /= 1000;
    i++;
  }
  return `${Number(size.toPrecision(4))}${units[i]}`;
}

/** The parts of `GET /system/df` the table reads. */
export interface DiskUsageAnswer {
  LayersSize?: number;
  Images?: Array<{ Size: number; SharedSize: number; Containers: number }> | null;
  Containers?: Array<{ State: string; SizeRw?: number }> | null;
  Volumes?: Array<{ UsageData?: { Size: number; RefCount: number } | null }> | null;
}

/** A size and its share of `total`, as Docker's `RECLAIMABLE` column shows it. */
function reclaimable(bytes: number, total: number): string {
  return total > 0
    ? `${humanSize(bytes)} (${Math.floor((bytes * 100) / total)}%)`
    : humanSize(bytes);
}

/** The rows of `system df`'s table, computed as the Docker CLI does. */
export function diskUsageRows(df: DiskUsageAnswer): Record<string, string>[] {
  const images = df.Images ?? [];
  const layers = df.LayersSize ?? 0;
  const used = images.filter((i) => i.Containers > 0)
    .reduce((sum, i) => sum + i.Size - Math.max(i.SharedSize, 0), 0);
  const containers = df.Containers ?? [];
  const rw = containers.reduce((sum, c) => sum + (c.SizeRw ?? 0), 0);
  const idleRw = containers.filter((c) => c.State !== "running" && c.State !== "paused")
    .reduce((sum, c) => sum + (c.SizeRw ?? 0), 0);
  const volumes = df.Volumes ?? [];
  const volumeSize = (v: (typeof volumes)[number]) => Math.max(v.UsageData?.Size ?? 0, 0);
  const volumesTotal = volumes.reduce((sum, v) => sum + volumeSize(v), 0);
  const volumesIdle = volumes.filter((v) => (v.UsageData?.RefCount ?? 0) === 0)
    .reduce((sum, v) => sum + volumeSize(v), 0);
  return [
    {
      Type: "Images",
      TotalCount: String(images.length),
      Active: String(images.filter((i) => i.Containers > 0).length),
      Size: humanSize(layers),
      Reclaimable: reclaimable(Math.max(layers - used, 0), layers),
    },
    {
      Type: "Containers",
      TotalCount: String(containers.length),
      Active: String(containers.filter((c) => c.State === "running").length),
      Size: humanSize(rw),
      Reclaimable: reclaimable(idleRw, rw),
    },
    {
      Type: "Local Volumes",
      TotalCount: String(volumes.length),
      Active: String(volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length),
      Size: humanSize(volumesTotal),
      Reclaimable: reclaimable(volumesIdle, volumesTotal),
    },
    { Type: "Build Cache", TotalCount: "0", Active: "0", Size: "0B", Reclaimable: "0B" },
  ];
}

const dfCommand: Command = {
  name: "df",
  usage: "system df [OPTIONS]",
  description: "Show pouch disk usage",
  flags: [{ name: "format", kind: "string", description: "Format output using a template" }],
  maxArgs: 0,
  async run(ctx, flags) {
    const df = await ctx.client.json<DiskUsageAnswer>("GET", "/system/df");
    await out(
      ctx,
      renderRows(diskUsageRows(df), parseFormat(flags.string("format")), {
        headers: {
          Type: "TYPE",
          TotalCount: "TOTAL",
          Active: "ACTIVE",
          Size: "SIZE",
          Reclaimable: "RECLAIMABLE",
        },
        defaultTable: "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
      }),
    );
    return 0;
  },
};

const pruneCommand: Command = {
  name: "prune",
  usage: "system prune [OPTIONS]",
  description: "Remove unused data",
  flags: [
    {
      name: "all",
      short: "a",
      kind: "bool",
      description: "Remove all unused images, not just dangling ones",
    },
    { name: "volumes", kind: "bool", description: "Prune volumes" },
    { name: "force", short: "f", kind: "bool", description: "Do not prompt for confirmation" },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    if (!flags.bool("force")) {
      const warning = [
        "WARNING! This will remove:",
        "  - all stopped containers",
        "  - all networks not used by at least one container",
        ...(flags.bool("volumes") ? ["  - all volumes not used by at least one container"] : []),
        flags.bool("all")
          ? "  - all images without at least one container associated to them"
          : "  - all dangling images",
        "",
        "Are you sure you want to continue? [y/N] ",
      ].join("\n");
      await out(ctx, warning);
      const answer = (await readLine(ctx.stdin)).trim().toLowerCase();
      if (answer !== "y" && answer !== "yes") {
        await err(ctx, "system prune has been cancelled\n");
        return 1;
      }
    }
    let reclaimed = 0;
    const section = async (title: string, items: string[] | null | undefined) => {
      if (items && items.length > 0) await out(ctx, `${title}:\n${items.join("\n")}\n\n`);
    };
    const containers = await ctx.client.json<
      { ContainersDeleted: string[] | null; SpaceReclaimed: number }
    >("POST", "/containers/prune");
    reclaimed += containers.SpaceReclaimed ?? 0;
    await section("Deleted Containers", containers.ContainersDeleted);
    const networks = await ctx.client.json<{ NetworksDeleted: string[] | null }>(
      "POST",
      "/networks/prune",
    );
    await section("Deleted Networks", networks.NetworksDeleted);
    if (flags.bool("volumes")) {
      const volumes = await ctx.client.json<
        { VolumesDeleted: string[] | null; SpaceReclaimed: number }
      >("POST", "/volumes/prune");
      reclaimed += volumes.SpaceReclaimed ?? 0;
      await section("Deleted Volumes", volumes.VolumesDeleted);
    }
    const images = await ctx.client.json<{
      ImagesDeleted: Array<{ Untagged?: string; Deleted?: string }> | null;
      SpaceReclaimed: number;
    }>("POST", "/images/prune", {
      query: { filters: JSON.stringify({ dangling: [flags.bool("all") ? "false" : "true"] }) },
    });
    reclaimed += images.SpaceReclaimed ?? 0;
    await section(
      "Deleted Images",
      (images.ImagesDeleted ?? []).map((i) =>
        i.Untagged ? `untagged: ${i.Untagged}` : `deleted: ${i.Deleted}`
      ),
    );
    await out(ctx, `Total reclaimed space: ${humanSize(reclaimed)}\n`);
    return 0;
  },
};

/** One line of `stdin` (without waiting past its newline); empty at its end. */
async function readLine(stdin: ByteSource): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  while (true) {
    const n = await stdin.read(one);
    if (n === null || n === 0 || one[0] === 0x0a) break;
    bytes.push(one[0]!);
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** `system df` and `system prune` (the `system` group also holds `info`). */
export const diskCommands: Command[] = [dfCommand, pruneCommand];
