/**
 * Resolves a container's `--user` against the image's `/etc/passwd` and `/etc/group`, the way
 * Docker does through runc's `user.GetExecUser` and `user.GetAdditionalGroups`:
 *
 * - `""` is root (uid 0, gid 0) plus the groups that list root;
 * - `name` or `uid` takes the uid and primary gid from passwd (a numeric uid needs no entry);
 *   supplementary groups are the groups whose member list names the user;
 * - `user:group` (names or numbers) sets the gid explicitly and then no supplementary groups
 *   are looked up, only `--group-add` ones;
 * - `--group-add` entries are group names or numeric gids.
 *
 * `additionalGids` starts with the primary gid, as Docker 23+ and containerd do since
 * CVE-2023-25173 (otherwise a process could keep a group it was meant to lose).
 *
 * @module
 */

import { invalidArgument } from "./errors.ts";

/** The user a container's process runs as. */
export interface ResolvedUser {
  /** The user id. */
  uid: number;
  /** The primary group id. */
  gid: number;
  /** Every group of the process: the primary gid first, then supplementary and added groups. */
  additionalGids: number[];
}

/** The contents of the image's account files; a missing file is `undefined`. */
export interface AccountFiles {
  /** The text of `/etc/passwd`. */
  passwd?: string;
  /** The text of `/etc/group`. */
  group?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

// runc accepts ids in the range of a signed 32-bit integer.
const MAX_ID = 2147483647;
const RANGE_MESSAGE = `uids and gids must be in range 0-${MAX_ID}`;
const NO_PASSWD_ENTRIES = "no matching entries in passwd file";
const NO_GROUP_ENTRIES = "no matching entries in group file";

/**
 * Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`, ...) to numeric ids using the
 * image's account files, and appends the `groupAdd` groups.
 *
 * @throws InvalidArgument for a name missing from the files or an id out of range, with
 *   Docker's messages (`unable to find user app: no matching entries in passwd file`).
 */
export function resolveUser(
  user: string | undefined,
  files: AccountFiles,
  groupAdd?: string[],
): ResolvedUser {
  const [userArg = "", groupArg = ""] = splitUserSpec(user ?? "");
  const users = parsePasswd(files.passwd ?? "");
  const groups = parseGroup(files.group ?? "");

  let uid = 0;
  let gid = 0;
  let matchedName = "";

  const numericUid = parseId(userArg);
  const found = users.find((entry) => {
    if (userArg === "") return entry.uid === 0; // no user given: root, as runc's defaults
    if (numericUid !== undefined) return entry.uid === numericUid; // numbers are always uids
    return entry.name === userArg;
  });
  if (found) {
    matchedName = found.name;
    uid = found.uid;
    gid = found.gid;
  } else if (userArg !== "") {
    if (numericUid === undefined) {
      throw invalidArgument(`unable to find user ${userArg}: ${NO_PASSWD_ENTRIES}`);
    }
    uid = checkRange(numericUid);
  }

  let supplementary: number[] = [];
  if (groupArg !== "") {
    const numericGid = parseId(groupArg);
    const group = groups.find((entry) =>
      numericGid !== undefined ? entry.gid === numericGid : entry.name === groupArg
    );
    if (group) {
      gid = group.gid;
    } else if (numericGid === undefined) {
      throw invalidArgument(`unable to find group ${groupArg}: ${NO_GROUP_ENTRIES}`);
    } else {
      gid = checkRange(numericGid);
    }
  } else if (matchedName !== "") {
    // Supplementary groups only in the implicit form: `user:group` means exactly that group.
    supplementary = groups.filter((entry) => entry.members.includes(matchedName)).map((g) => g.gid);
  }

  const added = resolveAdditionalGroups(groupAdd ?? [], groups);
  return { uid, gid, additionalGids: [gid, ...supplementary, ...added] };
}

/** `--group-add` entries to gids: a group name, or a number with or without a group entry. */
function resolveAdditionalGroups(names: string[], groups: GroupEntry[]): number[] {
  const gids: number[] = [];
  for (const name of names) {
    const group = groups.find((entry) => entry.name === name || String(entry.gid) === name);
    let gid: number;
    if (group) {
      gid = group.gid;
    } else {
      const numeric = parseId(name);
      if (numeric === undefined) {
        throw invalidArgument(`Unable to find group ${name}: ${NO_GROUP_ENTRIES}`);
      }
      gid = checkRange(numeric);
    }
    if (!gids.includes(gid)) gids.push(gid);
  }
  return gids;
}

/** Splits `user[:group]` at the first colon. */
function splitUserSpec(spec: string): [string, string] {
  const colon = spec.indexOf(":");
  if (colon < 0) return [spec.trim(), ""];
  return [spec.slice(0, colon).trim(), spec.slice(colon + 1).trim()];
}

/** A decimal id as Go's `strconv.Atoi` reads it (a sign is allowed), or undefined. */
function parseId(text: string): number | undefined {
  if (!/^[+-]?\d+$/.test(text)) return undefined;
  return Number(text);
}

function checkRange(id: number): number {
  if (id < 0 || id > MAX_ID) throw invalidArgument(RANGE_MESSAGE);
  return id;
}

/** The colon-separated records of an account file, without blank lines and comments. */
function records(text: string): string[][] {
  return text.split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.split(":"));
}

/** `name:password:uid:gid:gecos:home:shell` lines; malformed ids read as 0 like runc. */
function parsePasswd(text: string): PasswdEntry[] {
  return records(text).map((fields) => ({
    name: fields[0] ?? "",
    uid: parseId(fields[2] ?? "") ?? 0,
    gid: parseId(fields[3] ?? "") ?? 0,
  }));
}

/** `name:password:gid:member,member` lines. */
function parseGroup(text: string): GroupEntry[] {
  return records(text).map((fields) => ({
    name: fields[0] ?? "",
    gid: parseId(fields[2] ?? "") ?? 0,
    members: (fields[3] ?? "").split(",").map((m) => m.trim()).filter((m) => m !== ""),
  }));
}
