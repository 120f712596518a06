/**
 * IPv4 address and CIDR arithmetic for network configuration: parsing and validating subnets,
 * gateways and ranges, overlap checks, and picking a free subnet from a pool.
 *
 * @module
 */
import { invalidArgument } from "../engine/errors.ts";

/** A parsed IPv4 subnet: its network address (as a number) and prefix length. */
export interface Subnet {
  /** The network address, host bits cleared, as an unsigned 32-bit number. */
  network: number;
  /** The prefix length, 0 to 32. */
  prefix: number;
}

/** Parses a dotted-quad IPv4 address into an unsigned 32-bit number; undefined if invalid. */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const byte = Number(part);
    if (byte > 255) return undefined;
    value = value * 256 + byte;
  }
  return value;
}

/** Formats an unsigned 32-bit number as a dotted-quad IPv4 address. */
export function formatIPv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** The netmask of a prefix length, as an unsigned 32-bit number. */
function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff - (2 ** (32 - prefix) - 1));
}

/**
 * Parses `a.b.c.d/nn` into the address given and its subnet (host bits cleared).
 *
 * @throws InvalidArgument naming `what` when the text is not an IPv4 CIDR.
 */
export function parseCidr(text: string, what = "subnet"): { address: number; subnet: Subnet } {
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(text.trim());
  const address = match ? parseIPv4(match[1]!) : undefined;
  const prefix = match ? Number(match[2]) : NaN;
  if (address === undefined || !(prefix >= 0 && prefix <= 32)) {
    throw invalidArgument(
      `invalid ${what} ${JSON.stringify(text)}: want an IPv4 CIDR (a.b.c.d/nn)`,
    );
  }
  return { address, subnet: { network: and(address, maskOf(prefix)), prefix } };
}

/** Parses `a.b.c.d/nn` as a subnet; the address must be the network address. */
export function parseSubnet(text: string, what = "subnet"): Subnet {
  const { address, subnet } = parseCidr(text, what);
  if (address !== subnet.network) {
    throw invalidArgument(
      `invalid ${what} ${text}: it has host bits set (did you mean ${formatSubnet(subnet)}?)`,
    );
  }
  return subnet;
}

/** `a.b.c.d/nn`. */
export function formatSubnet(subnet: Subnet): string {
  return `${formatIPv4(subnet.network)}/${subnet.prefix}`;
}

/** The number of addresses in `subnet`. */
export function sizeOf(subnet: Subnet): number {
  return 2 ** (32 - subnet.prefix);
}

/** The last address of `subnet` (its broadcast address). */
export function lastOf(subnet: Subnet): number {
  return subnet.network + sizeOf(subnet) - 1;
}

/** Whether `address` lies in `subnet`. */
export function contains(subnet: Subnet, address: number): boolean {
  return address >= subnet.network && address <= lastOf(subnet);
}

/** Whether two subnets share any address. */
export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.network <= lastOf(b) && b.network <= lastOf(a);
}

/** Whether `inner` lies wholly inside `outer`. */
export function within(inner: Subnet, outer: Subnet): boolean {
  return contains(outer, inner.network) && contains(outer, lastOf(inner));
}

/**
 * Whether `address` can be given to a container in `subnet`: inside it and, for subnets of
 * more than two addresses, neither the network nor the broadcast address.
 */
export function isHostAddress(subnet: Subnet, address: number): boolean {
  if (!contains(subnet, address)) return false;
  if (subnet.prefix >= 31) return true;
  return address !== subnet.network && address !== lastOf(subnet);
}

/** The first host address of `subnet`: where a gateway goes by default. */
export function firstHost(subnet: Subnet): number {
  return subnet.prefix >= 31 ? subnet.network : subnet.network + 1;
}

/**
 * The first subnet of `size` (a prefix length) carved from `pools`, in order, that overlaps none
 * of `taken`; undefined when every one does.
 */
export function pickSubnet(
  pools: Subnet[],
  options: { prefix: number; taken: Subnet[] },
): Subnet | undefined {
  for (const pool of pools) {
    const prefix = Math.max(options.prefix, pool.prefix);
    const step = 2 ** (32 - prefix);
    for (let network = pool.network; network + step - 1 <= lastOf(pool); network += step) {
      const candidate = { network, prefix };
      if (!options.taken.some((t) => overlaps(t, candidate))) return candidate;
    }
  }
  return undefined;
}

function and(a: number, b: number): number {
  return (a & b) >>> 0;
}
