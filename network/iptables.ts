/**
 * Finds and removes the iptables rules that CNI plugins leave for attachments that no longer
 * exist (a crash between ADD and DEL, or a DEL whose namespace was already gone, which the
 * bridge plugin answers without removing its masquerade chain). The bridge and portmap plugins
 * tag their rules with comments naming the network and the container:
 * `name: "NET" id: "CID"` (masquerade) and `dnat name: "NET" id: "CID"` (published ports).
 *
 * @module
 */
import { run } from "./netns.ts";

/** A rule of the nat table made by a CNI plugin for one attachment. */
export interface CniRule {
  /** The chain the rule is in (`POSTROUTING`, `CNI-HOSTPORT-DNAT`). */
  chain: string;
  /** The rule's arguments after `-A CHAIN`, unquoted: what `iptables -D CHAIN` takes. */
  args: string[];
  /** The CNI network name in its comment. */
  network: string;
  /** The container ID in its comment. */
  containerId: string;
  /** The per-attachment chain it jumps to (flushed and deleted with it). */
  target: string;
}

/** Splits an iptables-save rule line into arguments, honouring `"..."` with `\"` escapes. */
export function splitRule(line: string): string[] {
  const args: string[] = [];
  let current = "";
  let inArg = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === "\\" && i + 1 < line.length) current += line[++i];
      else if (ch === '"') quoted = false;
      else current += ch;
    } else if (ch === '"') {
      quoted = true;
      inArg = true;
    } else if (ch === " ") {
      if (inArg) args.push(current);
      current = "";
      inArg = false;
    } else {
      current += ch;
      inArg = true;
    }
  }
  if (inArg) args.push(current);
  return args;
}

/** The CNI attachment rules in `iptables-save -t nat` output. */
export function findCniRules(save: string): CniRule[] {
  const rules: CniRule[] = [];
  for (const line of save.split("\n")) {
    if (!line.startsWith("-A ")) continue;
    const args = splitRule(line);
    const comment = args[args.indexOf("--comment") + 1];
    const target = args[args.indexOf("-j") + 1];
    if (!args.includes("--comment") || !comment || !target || !args.includes("-j")) continue;
    const match = /^(?:dnat )?name: "([^"]*)" id: "([^"]*)"$/.exec(comment);
    if (!match || !target.startsWith("CNI-")) continue;
    rules.push({
      chain: args[1]!,
      args: args.slice(2),
      network: match[1]!,
      containerId: match[2]!,
      target,
    });
  }
  return rules;
}

/**
 * Removes the rules (and the chains they jump to) of attachments to `networks` whose container
 * `keep` does not claim; returns how many rules went. Rules of other networks (other daemons,
 * other CNI users) are never touched.
 */
export async function sweepRules(
  networks: Set<string>,
  keep: (containerId: string, network: string) => boolean,
): Promise<number> {
  let save: string;
  try {
    save = await run("iptables-save", ["-t", "nat"]);
  } catch {
    // No iptables here: nothing can have been left.
    return 0;
  }
  const stale = findCniRules(save).filter((rule) =>
    networks.has(rule.network) && !keep(rule.containerId, rule.network)
  );
  for (const rule of stale) {
    await run("iptables", ["-w", "-t", "nat", "-D", rule.chain, ...rule.args]).catch(() => {});
  }
  for (const chain of new Set(stale.map((rule) => rule.target))) {
    await run("iptables", ["-w", "-t", "nat", "-F", chain]).catch(() => {});
    await run("iptables", ["-w", "-t", "nat", "-X", chain]).catch(() => {});
  }
  return stale.length;
}
