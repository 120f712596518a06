/**
 * The bridge driver: each bridge network is a Linux bridge device that holds the gateway
 * address, configured by the daemon (so that the host routes to the subnet from the moment the
 * network exists, which keeps later auto-chosen subnets clear of it), and a CNI configuration
 * list of `bridge` with `host-local` IPAM and, for published ports, `portmap`.
 *
 * @module
 */
import { formatIPv4, lastOf, parseCidr, parseSubnet, type Subnet } from "./cidr.ts";
import type { NetworkConfigList } from "./cni.ts";
import { run } from "./netns.ts";

/** What the CNI configuration of a bridge network is made from. */
export interface BridgeNetworkConfig {
  /** The CNI network name: the network's ID, unique per daemon (rules carry it). */
  name: string;
  /** The bridge device. */
  bridge: string;
  subnet: string;
  gateway: string;
  /** Addresses are allocated from here (`--ip-range`, `--fixed-cidr`) when set. */
  ipRange?: string;
  mtu: number;
  /** No masquerade and no default route: containers reach only each other and the host. */
  internal: boolean;
}

/** Options of {@link bridgeConfList}. */
export interface ConfListOptions {
  /** host-local's state directory (`<home>/network/ipam`). */
  ipamDir: string;
  /** Masquerade outgoing traffic and publish ports (`--iptables`). */
  iptables: boolean;
  /** The bridge acts as the gateway and IP forwarding is on (`--ipforward`). */
  ipForward: boolean;
  /** The attachment publishes ports: the portmap plugin joins the chain (with `iptables`). */
  portMappings: boolean;
  /**
   * The bridge plugin's own masquerade, a chain per attachment (nine iptables runs per ADD, six
   * per DEL). Attachments are masqueraded by the network's one rule now ({@link
   * ensureMasquerade}); this is for removing those made before, whose DEL needs it.
   */
  attachmentMasquerade?: boolean;
}

/** The CNI configuration list of a bridge network. */
export function bridgeConfList(
  network: BridgeNetworkConfig,
  options: ConfListOptions,
): NetworkConfigList {
  const subnet = parseSubnet(network.subnet);
  const range: Record<string, string> = { subnet: network.subnet, gateway: network.gateway };
  if (network.ipRange) Object.assign(range, allocationRange(subnet, parseSubnet(network.ipRange)));
  return {
    cniVersion: "1.0.0",
    name: network.name,
    plugins: [
      {
        type: "bridge",
        bridge: network.bridge,
        isGateway: options.ipForward,
        ipMasq: options.iptables && !network.internal && options.attachmentMasquerade === true,
        hairpinMode: true,
        mtu: network.mtu,
        ipam: {
          type: "host-local",
          ranges: [[range]],
          routes: network.internal ? [] : [{ dst: "0.0.0.0/0" }],
          dataDir: options.ipamDir,
        },
      },
      // snat lets connections to 127.0.0.1:PORT reach the container: the plugin sets
      // route_localnet on the bridge and masquerades those connections.
      ...(options.iptables && options.portMappings
        ? [{ type: "portmap", capabilities: { portMappings: true }, snat: true }]
        : []),
    ],
  };
}

/** host-local's `rangeStart`/`rangeEnd` for an allocation range inside `subnet`. */
export function allocationRange(
  subnet: Subnet,
  range: Subnet,
): { rangeStart: string; rangeEnd: string } {
  const start = Math.max(range.network, subnet.network + 1);
  const end = Math.min(lastOf(range), lastOf(subnet) - 1);
  return { rangeStart: formatIPv4(start), rangeEnd: formatIPv4(end) };
}

/** Creates bridge `name` with `gateway/prefix` and brings it up; an existing one is completed. */
export async function ensureBridge(
  name: string,
  options: { gateway: string; subnet: string; mtu: number },
): Promise<void> {
  const prefix = parseSubnet(options.subnet).prefix;
  const address = `${options.gateway}/${prefix}`;
  const existing = await linkAddresses(name);
  if (!existing) {
    await run("ip", ["link", "add", "name", name, "type", "bridge"]).catch(async (err) => {
      // Another daemon (or a concurrent call) made it meanwhile.
      if (!await linkAddresses(name)) throw err;
    });
    await run("ip", ["link", "set", "dev", name, "mtu", String(options.mtu)]);
    // A bridge without an address of its own takes the lowest of its ports', which changes as
    // containers come and go; a fixed one keeps the plugins' CHECK (which compares it) true.
    await run("ip", ["link", "set", "dev", name, "address", bridgeMac(name)]);
  }
  if (!(existing ?? []).includes(address)) {
    await run("ip", ["addr", "add", address, "dev", name]).catch(async (err) => {
      if (!(await linkAddresses(name) ?? []).includes(address)) throw err;
    });
  }
  await run("ip", ["link", "set", "dev", name, "up"]);
}

/**
 * Whether bridge `name` exists and is up, from sysfs (no process): what an attachment needs
 * checked; the bridge plugin gives the bridge its gateway address again if it lost it.
 */
export async function bridgeIsUp(name: string): Promise<boolean> {
  try {
    await Deno.stat(`/sys/class/net/${name}/bridge`);
    const flags = Number((await Deno.readTextFile(`/sys/class/net/${name}/flags`)).trim());
    return (flags & IFF_UP) !== 0;
  } catch {
    return false;
  }
}

/** `IFF_UP` of `<linux/if.h>`. */
const IFF_UP = 0x1;

/**
 * The iptables rule that masquerades what a network's containers send out of the host, one per
 * network as Docker has it (`-s SUBNET ! -o BRIDGE -j MASQUERADE`), made with the network.
 */
function masqueradeRule(network: { subnet: string; bridge: string }): string[] {
  return [
    "POSTROUTING",
    "-s",
    network.subnet,
    "!",
    "-o",
    network.bridge,
    "-m",
    "comment",
    "--comment",
    `pouch masquerade ${network.bridge}`,
    "-j",
    "MASQUERADE",
  ];
}

/** Adds the network's masquerade rule unless it is there. */
export async function ensureMasquerade(network: { subnet: string; bridge: string }): Promise<void> {
  const rule = masqueradeRule(network);
  const present = await run("iptables", ["-w", "-t", "nat", "-C", ...rule]).then(
    () => true,
    () => false,
  );
  if (!present) await run("iptables", ["-w", "-t", "nat", "-A", ...rule]);
}

/** Removes the network's masquerade rule; a missing one is not an error. */
export async function removeMasquerade(network: { subnet: string; bridge: string }): Promise<void> {
  const rule = masqueradeRule(network);
  // Deleted until none is left: two daemons' starts may have raced to add it.
  for (let i = 0; i < 8; i++) {
    const deleted = await run("iptables", ["-w", "-t", "nat", "-D", ...rule]).then(
      () => true,
      () => false,
    );
    if (!deleted) return;
  }
}

/** A locally administered unicast MAC derived from the bridge's name (stable across restarts). */
export function bridgeMac(name: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  const bytes = [0x02, 0x42, hash >>> 24, (hash >>> 16) & 0xff, (hash >>> 8) & 0xff, hash & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Deletes bridge `name`; a missing one is not an error. */
export async function removeBridge(name: string): Promise<void> {
  if (!await linkAddresses(name)) return;
  await run("ip", ["link", "del", "dev", name]).catch(async (err) => {
    if (await linkAddresses(name)) throw err;
  });
}

/** The IPv4 addresses (`a.b.c.d/nn`) of link `name`, or undefined when it does not exist. */
export async function linkAddresses(name: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await run("ip", ["-j", "-4", "addr", "show", "dev", name]);
  } catch {
    return undefined;
  }
  const links = JSON.parse(text || "[]") as Array<
    { addr_info?: Array<{ local: string; prefixlen: number }> }
  >;
  if (links.length === 0) return undefined;
  return (links[0]!.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
}

/** The interfaces attached to bridge `name` (the host ends of containers' veths). */
export async function bridgePorts(name: string): Promise<string[]> {
  const text = await run("ip", ["-j", "link", "show", "master", name]).catch(() => "[]");
  return (JSON.parse(text || "[]") as Array<{ ifname: string }>).map((l) => l.ifname);
}

/**
 * The host's IPv4 routes (main table) other than the default route and those on `ignore`
 * devices: subnets a new network must not overlap, or traffic would go the wrong way.
 */
export async function hostRoutes(ignore: Set<string>): Promise<Array<Subnet & { dev: string }>> {
  const text = await run("ip", ["-j", "-4", "route", "show"]).catch(() => "[]");
  const routes = JSON.parse(text || "[]") as Array<{ dst: string; dev?: string }>;
  const out: Array<Subnet & { dev: string }> = [];
  for (const route of routes) {
    if (route.dst === "default" || ignore.has(route.dev ?? "")) continue;
    try {
      const dst = route.dst.includes("/") ? route.dst : `${route.dst}/32`;
      out.push({ ...parseCidr(dst).subnet, dev: route.dev ?? "" });
    } catch {
      // Not an IPv4 destination we understand (a multicast or blackhole form): skip it.
    }
  }
  return out;
}

/** Turns IP forwarding on (Docker's `--ip-forward`). */
export async function enableIpForward(): Promise<void> {
  const path = "/proc/sys/net/ipv4/ip_forward";
  if ((await Deno.readTextFile(path)).trim() !== "1") await Deno.writeTextFile(path, "1\n");
}
