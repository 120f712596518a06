/**
 * Published ports: Docker's `HostConfig.PortBindings` (`{"80/tcp": [{HostIp, HostPort}]}`) and
 * `PublishAllPorts` with the exposed ports, turned into the `portMappings` the CNI portmap
 * plugin takes; host ports checked free (a bind test, and against the daemon's other
 * containers) and random ones chosen; and the `Ports` views of inspect and `ps`.
 *
 * @module
 */
import { conflict, invalidArgument } from "../engine/errors.ts";
import { parseIPv4 } from "./cidr.ts";

/** One published port, in the portmap plugin's shape. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp" | "sctp";
  /** `""`: every host address. */
  hostIP: string;
}

/** What {@link planPortMappings} reads from a create request. */
export interface PublishInput {
  PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null;
  PublishAllPorts?: boolean;
  /** `Config.ExposedPorts` merged with the image's. */
  ExposedPorts?: Record<string, unknown> | null;
}

/** Options of {@link planPortMappings}. */
export interface PlanOptions {
  /** Host ports the daemon's other containers publish already. */
  taken: PortMapping[];
  /** Whether a host port can be bound now; by default a real bind test. */
  isFree?: (mapping: PortMapping) => boolean;
  /** A free host port for `protocol` on `hostIP`; by default the kernel picks one. */
  randomPort?: (protocol: PortMapping["protocol"], hostIP: string) => number;
}

/** Parses `80`, `80/tcp`, `53/udp` into a port and protocol. */
export function parsePortKey(key: string): { port: number; protocol: PortMapping["protocol"] } {
  const [portText, protocolText = "tcp"] = key.split("/");
  const port = Number(portText);
  const protocol = protocolText.toLowerCase();
  if (!/^\d+$/.test(portText ?? "") || port < 1 || port > 65535) {
    throw invalidArgument(`invalid port ${JSON.stringify(key)}: want 1-65535[/tcp|udp|sctp]`);
  }
  if (protocol !== "tcp" && protocol !== "udp" && protocol !== "sctp") {
    throw invalidArgument(`invalid protocol in port ${key}: want tcp, udp or sctp`);
  }
  return { port, protocol };
}

/**
 * The port mappings of a create request: every binding of `PortBindings`, and with
 * `PublishAllPorts` every exposed port without one, on a random host port.
 *
 * @throws InvalidArgument for bad ports or host addresses; Conflict when a host port is taken.
 */
export function planPortMappings(input: PublishInput, options: PlanOptions): PortMapping[] {
  const isFree = options.isFree ?? bindTest;
  const randomPort = options.randomPort ?? kernelPort;
  const mappings: PortMapping[] = [];
  const wanted: Array<{ key: string; hostIp: string; hostPort: string }> = [];
  for (const [key, bindings] of Object.entries(input.PortBindings ?? {})) {
    for (const binding of bindings ?? [{}]) {
      wanted.push({ key, hostIp: binding.HostIp ?? "", hostPort: binding.HostPort ?? "" });
    }
  }
  if (input.PublishAllPorts) {
    const bound = new Set(Object.keys(input.PortBindings ?? {}).map(normalKey));
    for (const key of Object.keys(input.ExposedPorts ?? {})) {
      if (!bound.has(normalKey(key))) wanted.push({ key, hostIp: "", hostPort: "" });
    }
  }
  for (const { key, hostIp, hostPort } of wanted) {
    const { port, protocol } = parsePortKey(key);
    const hostIP = hostIp === "0.0.0.0" ? "" : hostIp;
    if (hostIP !== "" && parseIPv4(hostIP) === undefined) {
      throw invalidArgument(`invalid host IP ${hostIp} for port ${key}: want an IPv4 address`);
    }
    let mapping: PortMapping;
    if (hostPort === "" || hostPort === "0") {
      mapping = { hostPort: 0, containerPort: port, protocol, hostIP };
      for (let attempt = 0; attempt < 20 && mapping.hostPort === 0; attempt++) {
        const candidate = { ...mapping, hostPort: randomPort(protocol, hostIP) };
        if (![...options.taken, ...mappings].some((m) => clashes(m, candidate))) {
          mapping = candidate;
        }
      }
      if (mapping.hostPort === 0) {
        throw conflict(`no free host port for ${key}`);
      }
    } else {
      if (!/^\d+$/.test(hostPort) || Number(hostPort) < 1 || Number(hostPort) > 65535) {
        throw invalidArgument(
          `invalid host port ${JSON.stringify(hostPort)} for ${key}: want 1-65535 (ranges are ` +
            "not supported)",
        );
      }
      mapping = { hostPort: Number(hostPort), containerPort: port, protocol, hostIP };
      const address = `${hostIP || "0.0.0.0"}:${hostPort}`;
      if ([...options.taken, ...mappings].some((m) => clashes(m, mapping)) || !isFree(mapping)) {
        throw conflict(`Bind for ${address} failed: port is already allocated`);
      }
    }
    mappings.push(mapping);
  }
  return mappings;
}

/** Whether two mappings want the same host port (the same address, or one on every address). */
export function clashes(a: PortMapping, b: PortMapping): boolean {
  return a.hostPort === b.hostPort && a.protocol === b.protocol &&
    (a.hostIP === b.hostIP || a.hostIP === "" || b.hostIP === "");
}

function normalKey(key: string): string {
  return key.includes("/") ? key.toLowerCase() : `${key}/tcp`;
}

/** Whether nothing on the host listens on the mapping's port: bind it and let it go. */
function bindTest(mapping: PortMapping): boolean {
  const hostname = mapping.hostIP || "0.0.0.0";
  try {
    if (mapping.protocol === "udp") {
      Deno.listenDatagram({ transport: "udp", hostname, port: mapping.hostPort }).close();
    } else {
      // sctp cannot be bound from Deno; a TCP bind test is the nearest check.
      Deno.listen({ hostname, port: mapping.hostPort }).close();
    }
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) return false;
    throw err;
  }
}

/** A port the kernel considers free now (Docker also draws from the ephemeral range). */
function kernelPort(protocol: PortMapping["protocol"], hostIP: string): number {
  const hostname = hostIP || "0.0.0.0";
  if (protocol === "udp") {
    const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    const port = (socket.addr as Deno.NetAddr).port;
    socket.close();
    return port;
  }
  const listener = Deno.listen({ hostname, port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Inspect's `NetworkSettings.Ports`: every exposed or published port, null when unpublished. */
export function portsView(
  exposed: Record<string, unknown> | null | undefined,
  mappings: PortMapping[],
): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const view: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const key of Object.keys(exposed ?? {})) view[normalKey(key)] = null;
  for (const m of mappings) {
    const key = `${m.containerPort}/${m.protocol}`;
    (view[key] ??= []).push({ HostIp: m.hostIP || "0.0.0.0", HostPort: String(m.hostPort) });
  }
  return view;
}

/** `GET /containers/json`'s `Ports`. */
export function portsSummary(
  exposed: Record<string, unknown> | null | undefined,
  mappings: PortMapping[],
): Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> {
  const out: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> = [];
  const published = new Set(mappings.map((m) => `${m.containerPort}/${m.protocol}`));
  for (const key of Object.keys(exposed ?? {})) {
    if (published.has(normalKey(key))) continue;
    const { port, protocol } = parsePortKey(key);
    out.push({ PrivatePort: port, Type: protocol });
  }
  for (const m of mappings) {
    out.push({
      IP: m.hostIP || "0.0.0.0",
      PrivatePort: m.containerPort,
      PublicPort: m.hostPort,
      Type: m.protocol,
    });
  }
  return out;
}
