/**
 * Docker image references: parsing with Docker's grammar, normalisation to fully qualified names
 * (`busybox` is `docker.io/library/busybox:latest`) and the familiar form Docker prints back.
 *
 * The grammar (distribution's `reference` package):
 *
 * ```
 * reference        := name [ ":" tag ] [ "@" digest ]
 * name             := [domain '/'] path-component ['/' path-component]*
 * domain           := host [':' port-number]
 * host             := domain-name | IPv4address | '[' IPv6address ']'
 * domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 * path-component   := alpha-numeric [separator alpha-numeric]*
 * alpha-numeric    := /[a-z0-9]+/
 * separator        := /[_.]|__|[-]*\/
 * tag              := /[\w][\w.-]{0,127}/
 * digest           := algorithm ":" hex   (sha256: 64 hex digits)
 * ```
 *
 * @module
 */

import { invalidArgument } from "./errors.ts";

/** The registry Docker assumes when a name has no domain. */
export const DEFAULT_DOMAIN = "docker.io";
/** The namespace of Docker Hub's official images. */
export const OFFICIAL_REPO_PREFIX = "library/";
/** The tag Docker assumes when a reference has neither tag nor digest. */
export const DEFAULT_TAG = "latest";

/** A parsed, normalised reference. */
export interface Reference {
  /** Registry host and optional port, e.g. `docker.io`, `localhost:5000`. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  /** `algorithm:hex`, e.g. `sha256:...`. */
  digest?: string;
}

const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

const REFERENCE_RE = new RegExp(
  `^((?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`,
);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const ID_RE = /^[a-f0-9]{64}$/;
const NAME_MAX = 255;

/** Hex lengths of the digest algorithms Docker knows. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

function invalidFormat(detail?: string): Error {
  return invalidArgument(`invalid reference format${detail ? `: ${detail}` : ""}`);
}

/**
 * Splits a name into domain and remainder the way Docker does: the first component is a
 * domain only if it contains `.` or `:`, is `localhost`, or has upper-case letters.
 */
function splitDomain(name: string): [string, string] {
  const slash = name.indexOf("/");
  let domain: string;
  let remainder: string;
  const first = name.slice(0, slash);
  if (
    slash < 0 ||
    (!first.includes(".") && !first.includes(":") && first !== "localhost" &&
      first.toLowerCase() === first)
  ) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(slash + 1);
  }
  if (domain === "index.docker.io") domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) {
    remainder = OFFICIAL_REPO_PREFIX + remainder;
  }
  return [domain, remainder];
}

/**
 * Parses `s` with Docker's grammar and normalises its name (`busybox` becomes
 * `docker.io/library/busybox`). The tag is left out when `s` has none; use
 * {@link normalizeReference} for the fully qualified string with the default tag. Throws an
 * InvalidArgument error (`invalid reference format...`) for anything Docker would refuse.
 */
export function parseReference(s: string): Reference {
  if (s === "") throw invalidFormat();
  if (ID_RE.test(s)) {
    throw invalidArgument(
      `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`,
    );
  }
  const [domain, remainder] = splitDomain(s);
  // The repository part is what precedes a tag's colon or a digest's at sign.
  const nameEnd = remainder.search(/[:@]/);
  const remoteName = nameEnd < 0 ? remainder : remainder.slice(0, nameEnd);
  if (remoteName.toLowerCase() !== remoteName) {
    throw invalidFormat("repository name must be lowercase");
  }
  const match = REFERENCE_RE.exec(`${domain}/${remainder}`);
  if (!match) throw invalidFormat();
  const [, name, tag, digest] = match;
  if (name!.length > NAME_MAX) {
    throw invalidFormat(`repository name must not be more than ${NAME_MAX} characters`);
  }
  const ref: Reference = { domain, path: name!.slice(domain.length + 1) };
  if (!DOMAIN_RE.test(ref.domain)) throw invalidFormat();
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = validateDigest(digest);
  return ref;
}

/** Checks a digest's algorithm and length; returns it unchanged. */
function validateDigest(digest: string): string {
  const [algorithm, hex] = digest.split(":") as [string, string];
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) throw invalidArgument("unsupported digest algorithm");
  if (hex.length !== length) throw invalidArgument("invalid checksum digest length");
  if (!/^[a-f0-9]+$/.test(hex)) throw invalidArgument("invalid checksum digest format");
  return digest;
}

/** Whether `tag` is a valid tag. */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** `domain/path` of a reference: the repository it names. */
export function repositoryOf(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full string of a reference, e.g. `docker.io/library/busybox:latest`. */
export function formatReference(ref: Reference): string {
  let s = repositoryOf(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Adds the default tag when the reference has neither a tag nor a digest. */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: DEFAULT_TAG } : ref;
}

/**
 * The fully qualified form of `s`, with the default tag when it has neither tag nor digest:
 * `busybox` => `docker.io/library/busybox:latest`.
 */
export function normalizeReference(s: string): string {
  return formatReference(withDefaultTag(parseReference(s)));
}

/**
 * The short form Docker prints: `docker.io/library/busybox:latest` => `busybox:latest`,
 * `docker.io/foo/bar:1` => `foo/bar:1`; other registries are kept. Accepts any form `s` that
 * {@link parseReference} accepts, and a parsed {@link Reference}.
 */
export function familiarName(s: string | Reference): string {
  const ref = typeof s === "string" ? parseReference(s) : s;
  let name = repositoryOf(ref);
  if (ref.domain === DEFAULT_DOMAIN) {
    name = ref.path;
    if (
      name.startsWith(OFFICIAL_REPO_PREFIX) &&
      !name.slice(OFFICIAL_REPO_PREFIX.length).includes("/")
    ) {
      name = name.slice(OFFICIAL_REPO_PREFIX.length);
    }
  }
  if (ref.tag !== undefined) name += `:${ref.tag}`;
  if (ref.digest !== undefined) name += `@${ref.digest}`;
  return name;
}

/** `s` parsed, or undefined when it is not a valid reference. */
export function tryParseReference(s: string): Reference | undefined {
  try {
    return parseReference(s);
  } catch {
    return undefined;
  }
}
