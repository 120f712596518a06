/**
 * A container's `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, rendered from its
 * network settings and written into its directory, from where they are bind-mounted. Files are
 * rewritten in place (never replaced by a rename), so that a running container sees new peers.
 *
 * @module
 */
import { invalidArgument } from "../engine/errors.ts";

/** One line of a hosts file: an address and its names. */
export interface HostEntry {
  address: string;
  names: string[];
}

/** What {@link renderHosts} puts in a container's `/etc/hosts`. */
export interface HostsInput {
  /** The container's hostname (and `hostname.domainname` when a domain is set). */
  hostname: string;
  domainname?: string;
  /** The container's own address; none in `--net none`, so the hostname maps to 127.0.1.1. */
  address?: string;
  /** `--add-host` entries, Docker's `name:address` form. */
  extraHosts?: string[];
  /** Other containers on the same user networks (name resolution by hosts file). */
  peers?: HostEntry[];
}

/** Docker's fixed lines of a container's hosts file. */
const HOSTS_HEADER = [
  "127.0.0.1\tlocalhost",
  "::1\tlocalhost ip6-localhost ip6-loopback",
  "fe00::0\tip6-localnet",
  "ff00::0\tip6-mcastprefix",
  "ff02::1\tip6-allnodes",
  "ff02::2\tip6-allrouters",
];

/** Parses `--add-host` entries (`name:address`, the address may be IPv6). */
export function parseExtraHosts(extraHosts: string[]): HostEntry[] {
  return extraHosts.map((entry) => {
    const colon = entry.indexOf(":");
    const name = colon < 0 ? "" : entry.slice(0, colon);
    const address = colon < 0 ? "" : entry.slice(colon + 1).replace(/^\[(.*)\]$/, "$1");
    if (!name || !address) {
      throw invalidArgument(`invalid extra host ${JSON.stringify(entry)}: want name:address`);
    }
    return { address, names: [name] };
  });
}

/** A container's `/etc/hosts`. */
export function renderHosts(input: HostsInput): string {
  const lines = [...HOSTS_HEADER];
  const names = input.domainname
    ? [`${input.hostname}.${input.domainname}`, input.hostname]
    : [input.hostname];
  lines.push(`${input.address ?? "127.0.1.1"}\t${names.join(" ")}`);
  for (const entry of parseExtraHosts(input.extraHosts ?? [])) {
    lines.push(`${entry.address}\t${entry.names.join(" ")}`);
  }
  for (const peer of input.peers ?? []) lines.push(`${peer.address}\t${peer.names.join(" ")}`);
  return lines.join("\n") + "\n";
}

/** The host's `/etc/hosts` with `--add-host` entries appended (`--net host`). */
export function renderHostNetworkHosts(hostHosts: string, extraHosts: string[]): string {
  const base = hostHosts === "" || hostHosts.endsWith("\n") ? hostHosts : `${hostHosts}\n`;
  return base + parseExtraHosts(extraHosts).map((e) => `${e.address}\t${e.names.join(" ")}\n`)
    .join("");
}

/** What {@link renderResolvConf} needs. */
export interface ResolvInput {
  /** The host's resolv.conf text. */
  host: string;
  /** `--dns`: replaces the host's nameservers. */
  dns?: string[];
  /** `--dns-search`: replaces the host's search domains (`.` alone clears them). */
  dnsSearch?: string[];
  /** `--dns-option`: replaces the host's options. */
  dnsOptions?: string[];
  /** The container shares the host's network: loopback resolvers work there, keep them. */
  hostNetwork?: boolean;
}

/** Docker's fallback resolvers when the host has none a container could use. */
export const DEFAULT_NAMESERVERS = ["8.8.8.8", "8.8.4.4"];

/**
 * A container's `/etc/resolv.conf`, by Docker's rules: the host's nameservers minus loopback
 * ones (which mean nothing in another namespace; Google's if none is left) unless `--dns` is
 * given; search domains and options from the host unless given.
 */
export function renderResolvConf(input: ResolvInput): string {
  const hostNameservers: string[] = [];
  let hostSearch: string[] = [];
  let hostOptions: string[] = [];
  for (const line of input.host.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] === "nameserver" && fields[1]) hostNameservers.push(fields[1]);
    else if ((fields[0] === "search" || fields[0] === "domain") && fields.length > 1) {
      hostSearch = fields.slice(1);
    } else if (fields[0] === "options" && fields.length > 1) hostOptions = fields.slice(1);
  }
  let nameservers: string[];
  if (input.dns && input.dns.length > 0) {
    nameservers = input.dns;
  } else if (input.hostNetwork) {
    nameservers = hostNameservers;
  } else {
    nameservers = hostNameservers.filter((ns) => !isLoopback(ns));
    if (nameservers.length === 0) nameservers = DEFAULT_NAMESERVERS;
  }
  let search = input.dnsSearch && input.dnsSearch.length > 0 ? input.dnsSearch : hostSearch;
  if (search.length === 1 && search[0] === ".") search = [];
  const options = input.dnsOptions && input.dnsOptions.length > 0 ? input.dnsOptions : hostOptions;
  const lines = nameservers.map((ns) => `nameserver ${ns}`);
  if (search.length > 0) lines.push(`search ${search.join(" ")}`);
  if (options.length > 0) lines.push(`options ${options.join(" ")}`);
  return lines.join("\n") + "\n";
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

/** The files of one container, as {@link writeNetworkFiles} writes them. */
export interface NetworkFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

/** Writes (in place) `hostname`, `hosts` and `resolv.conf` into the container's `dir`. */
export async function writeNetworkFiles(dir: string, files: NetworkFiles): Promise<void> {
  await Deno.writeTextFile(`${dir}/hostname`, `${files.hostname}\n`);
  await Deno.writeTextFile(`${dir}/hosts`, files.hosts);
  await Deno.writeTextFile(`${dir}/resolv.conf`, files.resolvConf);
}

/** Reads a host file (`/etc/hosts`, `/etc/resolv.conf`); empty when missing. */
export async function readHostFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}
