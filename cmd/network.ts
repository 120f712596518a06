/**
 * Network commands: `network create`, `ls`, `inspect`, `rm`, `prune`, `connect` and
 * `disconnect`, with the Docker CLI's flags, requests and output.
 *
 * @module
 */

import { ApiError } from "./client.ts";
import { type Command, err, forEachArg, out } from "./command.ts";
import { buildFilters, printInspect } from "./container.ts";
import {
  type Cidr,
  cidrContains,
  invalidValue,
  parseCidr,
  parseIp,
  parseLabels,
  UsageError,
} from "./flags.ts";
import { naturalCompare, parseFormat, renderRows, shortId } from "./format.ts";
import { parseOpts } from "./volume.ts";

/** An item of `GET /networks` (the fields the CLI shows). */
export interface NetworkSummary {
  Name: string;
  Id: string;
  Created?: string;
  Scope?: string;
  Driver?: string;
  EnableIPv6?: boolean;
  Internal?: boolean;
  Labels?: Record<string, string> | null;
}

/** An IPAM pool of `POST /networks/create`. */
export interface IpamPoolRequest {
  Subnet: string;
  IPRange?: string;
  Gateway?: string;
}

/** The address options of `network create`, as typed. */
export interface IpamFlags {
  subnets: string[];
  ipRanges: string[];
  gateways: string[];
}

const enc = encodeURIComponent;

/** Whether `data` (an address or a CIDR) lies in `subnet`; throws for a malformed value. */
function inSubnet(subnet: Cidr, data: string): boolean {
  const ip = data.includes("/") ? parseCidr(data)?.address : parseIp(data);
  if (!ip) throw new UsageError(`invalid address or range: ${data}`);
  return cidrContains(subnet, ip);
}

/**
 * Pairs `--subnet`, `--ip-range` and `--gateway` into IPAM pools as the Docker CLI does: each
 * range and gateway goes to the subnet that holds it, at most one of each per subnet, and
 * subnets may not overlap.
 */
export function buildIpamPools(flags: IpamFlags): IpamPoolRequest[] {
  const { subnets, ipRanges, gateways } = flags;
  if (subnets.length < ipRanges.length || subnets.length < gateways.length) {
    throw new UsageError("every ip-range or gateway must have a corresponding subnet");
  }
  const pools: Array<{ cidr: Cidr; pool: IpamPoolRequest }> = [];
  for (const subnet of subnets) {
    const cidr = parseCidr(subnet);
    if (!cidr) throw new UsageError(`invalid subnet: invalid CIDR address: ${subnet}`);
    for (const other of pools) {
      if (inSubnet(other.cidr, subnet) || inSubnet(cidr, other.pool.Subnet)) {
        throw new UsageError("multiple overlapping subnet configuration is not supported");
      }
    }
    pools.push({ cidr, pool: { Subnet: subnet } });
  }
  const assign = (values: string[], key: "IPRange" | "Gateway", what: string) => {
    for (const value of values) {
      const matching = pools.filter((p) => inSubnet(p.cidr, value));
      if (matching.length === 0) throw new UsageError(`no matching subnet for ${what} ${value}`);
      for (const { pool } of matching) {
        const taken = pool[key];
        if (taken !== undefined) {
          throw new UsageError(
            key === "IPRange"
              ? `cannot configure multiple ranges (${value}, ${taken}) on the same subnet (${pool.Subnet})`
              : `cannot configure multiple gateways (${value}, ${taken}) for the same subnet (${pool.Subnet})`,
          );
        }
        pool[key] = value;
      }
    }
  };
  assign(ipRanges, "IPRange", "range");
  assign(gateways, "Gateway", "gateway");
  return pools.map((p) => p.pool);
}

const createCommand: Command = {
  name: "create",
  usage: "network create [OPTIONS] NETWORK",
  description: "Create a network",
  flags: [
    {
      name: "driver",
      short: "d",
      kind: "string",
      description: "Driver to manage the Network",
      default: '"bridge"',
    },
    { name: "opt", short: "o", kind: "list", description: "Set driver specific options" },
    { name: "label", kind: "list", description: "Set metadata on a network" },
    { name: "internal", kind: "bool", description: "Restrict external access to the network" },
    { name: "attachable", kind: "bool", description: "Enable manual container attachment" },
    { name: "ipv6", kind: "bool", description: "Enable IPv6 networking" },
    {
      name: "subnet",
      kind: "list",
      description: "Subnet in CIDR format that represents a network segment",
    },
    { name: "gateway", kind: "list", description: "IPv4 or IPv6 Gateway for the master subnet" },
    { name: "ip-range", kind: "list", description: "Allocate container ip from a sub-range" },
    {
      name: "ipam-driver",
      kind: "string",
      description: "IP Address Management Driver",
      default: '"default"',
    },
    { name: "ipam-opt", kind: "list", description: "Set IPAM driver specific options" },
  ],
  minArgs: 1,
  maxArgs: 1,
  async run(ctx, flags) {
    const config = buildIpamPools({
      subnets: flags.list("subnet"),
      ipRanges: flags.list("ip-range"),
      gateways: flags.list("gateway"),
    });
    const created = await ctx.client.json<{ Id: string; Warning?: string }>(
      "POST",
      "/networks/create",
      {
        json: {
          Name: flags.args[0],
          Driver: flags.string("driver") || "bridge",
          Internal: flags.bool("internal"),
          Attachable: flags.bool("attachable"),
          EnableIPv6: flags.bool("ipv6"),
          IPAM: {
            Driver: flags.string("ipam-driver") || "default",
            Config: config,
            Options: parseOpts(flags.list("ipam-opt")),
          },
          Options: parseOpts(flags.list("opt")),
          Labels: parseLabels(flags.list("label")),
        },
      },
    );
    if (created.Warning) await err(ctx, `${created.Warning}\n`);
    await out(ctx, `${created.Id}\n`);
    return 0;
  },
};

const lsHeaders: Record<string, string> = {
  ID: "NETWORK ID",
  Name: "NAME",
  Driver: "DRIVER",
  Scope: "SCOPE",
  IPv6: "IPV6",
  Internal: "INTERNAL",
  Labels: "LABELS",
  CreatedAt: "CREATED AT",
};

/** Go's `time.Time.String()` of an RFC 3339 time, in UTC. */
function goTime(rfc3339: string | undefined): string {
  const ms = Date.parse(rfc3339 ?? "");
  if (Number.isNaN(ms)) return "";
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

/** The `--format` fields of one network, as the Docker CLI's network formatter has them. */
export function networkRow(
  network: NetworkSummary,
  options: { noTrunc: boolean },
): Record<string, string> {
  return {
    ID: options.noTrunc ? network.Id : shortId(network.Id),
    Name: network.Name,
    Driver: network.Driver ?? "",
    Scope: network.Scope ?? "",
    IPv6: String(network.EnableIPv6 ?? false),
    Internal: String(network.Internal ?? false),
    Labels: Object.entries(network.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(","),
    CreatedAt: goTime(network.Created),
  };
}

const lsCommand: Command = {
  name: "ls",
  aliases: ["list"],
  usage: "network ls [OPTIONS]",
  description: "List networks",
  flags: [
    { name: "quiet", short: "q", kind: "bool", description: "Only display network IDs" },
    { name: "no-trunc", kind: "bool", description: "Do not truncate the output" },
    {
      name: "filter",
      short: "f",
      kind: "list",
      description: "Provide filter values (e.g. 'driver=bridge')",
    },
    {
      name: "format",
      kind: "string",
      description: "Format output using a custom template: 'table', 'json' or a Go template",
    },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    const networks = await ctx.client.json<NetworkSummary[] | null>("GET", "/networks", {
      query: { filters: buildFilters(flags.list("filter")) },
    });
    const sorted = (networks ?? []).sort((a, b) => naturalCompare(a.Name, b.Name));
    const rows = sorted.map((n) => networkRow(n, { noTrunc: flags.bool("no-trunc") }));
    if (flags.bool("quiet")) {
      await out(ctx, rows.map((r) => `${r.ID}\n`).join(""));
      return 0;
    }
    await out(
      ctx,
      renderRows(rows, parseFormat(flags.string("format")), {
        headers: lsHeaders,
        defaultTable: "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
      }),
    );
    return 0;
  },
};

const inspectCommand: Command = {
  name: "inspect",
  usage: "network inspect [OPTIONS] NETWORK [NETWORK...]",
  description: "Display detailed information on one or more networks",
  flags: [
    { name: "format", short: "f", kind: "string", description: "Format using a Go template" },
    { name: "verbose", short: "v", kind: "bool", description: "Verbose output for diagnostics" },
  ],
  minArgs: 1,
  run(ctx, flags) {
    return printInspect(ctx, flags.args, {
      format: flags.string("format"),
      fetch: (name) =>
        ctx.client.json("GET", `/networks/${enc(name)}`, {
          query: { verbose: flags.bool("verbose") || undefined },
        }),
      noun: "network",
    });
  },
};

const rmCommand: Command = {
  name: "rm",
  aliases: ["remove"],
  usage: "network rm NETWORK [NETWORK...]",
  description: "Remove one or more networks",
  flags: [{
    name: "force",
    short: "f",
    kind: "bool",
    description: "Do not error if the network does not exist",
  }],
  minArgs: 1,
  run(ctx, flags) {
    return forEachArg(ctx, flags.args, async (name) => {
      try {
        await ctx.client.call("DELETE", `/networks/${enc(name)}`);
      } catch (error) {
        // -f forgives only a network that is not there (Docker's rm -f).
        if (flags.bool("force") && error instanceof ApiError && error.status === 404) return;
        throw error;
      }
      await out(ctx, `${name}\n`);
    });
  },
};

const pruneCommand: Command = {
  name: "prune",
  usage: "network prune [OPTIONS]",
  description: "Remove all unused networks",
  flags: [
    { name: "force", short: "f", kind: "bool", description: "Do not prompt for confirmation" },
    {
      name: "filter",
      kind: "list",
      description: "Provide filter values (e.g. 'until=<timestamp>')",
    },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    if (!flags.bool("force")) {
      // Without a terminal to ask on, pruning silently would surprise: demand -f.
      throw new UsageError(
        "network prune removes all custom networks not used by a container: confirm with -f/--force",
      );
    }
    const answer = await ctx.client.json<{ NetworksDeleted: string[] | null }>(
      "POST",
      "/networks/prune",
      { query: { filters: buildFilters(flags.list("filter")) } },
    );
    const deleted = answer.NetworksDeleted ?? [];
    if (deleted.length > 0) await out(ctx, `Deleted Networks:\n${deleted.join("\n")}\n\n`);
    return 0;
  },
};

const connectCommand: Command = {
  name: "connect",
  usage: "network connect [OPTIONS] NETWORK CONTAINER",
  description: "Connect a container to a network",
  flags: [
    { name: "ip", kind: "string", description: "IPv4 address (e.g., 172.30.100.104)" },
    { name: "alias", kind: "list", description: "Add network-scoped alias for the container" },
  ],
  minArgs: 2,
  maxArgs: 2,
  async run(ctx, flags) {
    const [network, container] = flags.args as [string, string];
    const ip = flags.string("ip");
    if (ip !== undefined && parseIp(ip)?.bits !== 32) {
      throw invalidValue(flags.spec("ip"), ip, `${ip} is not an IPv4 address`);
    }
    const aliases = flags.list("alias");
    await ctx.client.call("POST", `/networks/${enc(network)}/connect`, {
      json: {
        Container: container,
        EndpointConfig: {
          ...(ip ? { IPAMConfig: { IPv4Address: ip } } : {}),
          ...(aliases.length > 0 ? { Aliases: aliases } : {}),
        },
      },
    });
    return 0;
  },
};

const disconnectCommand: Command = {
  name: "disconnect",
  usage: "network disconnect [OPTIONS] NETWORK CONTAINER",
  description: "Disconnect a container from a network",
  flags: [{
    name: "force",
    short: "f",
    kind: "bool",
    description: "Force the container to disconnect from a network",
  }],
  minArgs: 2,
  maxArgs: 2,
  async run(ctx, flags) {
    const [network, container] = flags.args as [string, string];
    await ctx.client.call("POST", `/networks/${enc(network)}/disconnect`, {
      json: { Container: container, Force: flags.bool("force") },
    });
    return 0;
  },
};

/** The `network` group. */
export const networkGroupCommands: Command[] = [
  createCommand,
  lsCommand,
  inspectCommand,
  rmCommand,
  pruneCommand,
  connectCommand,
  disconnectCommand,
];
