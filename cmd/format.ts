/**
 * Output formatting shared by the commands: aligned tables (Go's tabwriter), human sizes and
 * durations (Docker's go-units), and `--format` handling (`table ...`, `json`, templates).
 *
 * @module
 */

import { Template } from "./template.ts";

/** Options of {@link tabulate}. */
export interface TabulateOptions {
  /** Minimal width of a column, padding included (Docker: 10). */
  minWidth?: number;
  /** Spaces added after the widest cell of a column (Docker: 3). */
  padding?: number;
}

/**
 * Aligns rows into columns as Go's tabwriter does: every cell but a row's last is padded to
 * its column's width; the last cell is written as is.
 */
export function tabulate(rows: string[][], options: TabulateOptions = {}): string {
  const minWidth = options.minWidth ?? 10;
  const padding = options.padding ?? 3;
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length - 1; i++) {
      widths[i] = Math.max(widths[i] ?? 0, codePoints(row[i]!) + padding, minWidth);
    }
  }
  let out = "";
  for (const row of rows) {
    for (let i = 0; i < row.length - 1; i++) out += row[i]!.padEnd(widths[i]!);
    out += (row[row.length - 1] ?? "") + "\n";
  }
  return out;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** The characters (code points) of `text`, as `[...text].length` counts them. */
function codePoints(text: string): number {
  return SURROGATE.test(text) ? [...text].length : text.length;
}

/** Docker's `units.HumanDuration`: `Less than a second`, `5 seconds`, `About a minute`, ... */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  const minutes = Math.trunc(ms / 60_000);
  const hours = Math.round(ms / 3_600_000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

const decimalUnits = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/** Docker's `units.HumanSizeWithPrecision` (decimal units): `4.26MB`, `1.2GB`, `512B`. */
export function humanSize(bytes: number, precision = 3): string {
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < decimalUnits.length - 1) {
    size /= 1000;
    i++;
  }
  return `${Number(size.toPrecision(precision))}${decimalUnits[i]}`;
}

/** "5 seconds ago" from a time in seconds or an RFC 3339 string. */
export function timeAgo(when: number | string, now = Date.now()): string {
  const ms = typeof when === "number" ? when * 1000 : Date.parse(when);
  if (Number.isNaN(ms)) return "";
  return `${humanDuration(Math.max(0, now - ms))} ago`;
}

/** Shortens a 64-hex ID (with or without `sha256:`) to `length` characters. */
export function shortId(id: string, length = 12): string {
  const bare = id.startsWith("sha256:") ? id.slice("sha256:".length) : id;
  return bare.slice(0, length);
}

/** What a `--format` value asks for. */
export type FormatChoice =
  | { kind: "table"; template?: string }
  | { kind: "json" }
  | { kind: "template"; template: string };

/** Reads a `--format` value: empty or `table` for the default table, `json`, `table TPL`, TPL. */
export function parseFormat(format: string | undefined): FormatChoice {
  if (format === undefined || format === "" || format === "table") return { kind: "table" };
  if (format === "json") return { kind: "json" };
  if (format.startsWith("table ")) return { kind: "table", template: format.slice(6) };
  return { kind: "template", template: format };
}

/** Go's `\t`, `\n` escapes in format flags typed on a shell (`--format "{{.ID}}\t{{.Names}}"`). */
function unescapeFormat(template: string): string {
  return template.replaceAll("\\t", "\t").replaceAll("\\n", "\n");
}

/** Options of {@link renderRows}. */
export interface RenderRowsOptions {
  /** Column headers by field name, e.g. `{ID: "CONTAINER ID"}`, for `table {{.ID}}`. */
  headers: Record<string, string>;
  /** The default table's template, e.g. `{{.ID}}\t{{.Image}}`. */
  defaultTable: string;
  /** Tabwriter settings of the table. */
  tabulate?: TabulateOptions;
}

/**
 * Renders formatter rows (plain objects of strings) for a `--format` choice: a table with a
 * header, one JSON object per line, or one template line per row.
 */
export function renderRows(
  rows: Record<string, unknown>[],
  format: FormatChoice,
  options: RenderRowsOptions,
): string {
  if (format.kind === "json") return rows.map((r) => JSON.stringify(r) + "\n").join("");
  if (format.kind === "template") {
    const tpl = new Template(unescapeFormat(format.template));
    return rows.map((r) => tpl.execute(r) + "\n").join("");
  }
  const source = unescapeFormat(format.template ?? options.defaultTable);
  const tpl = new Template(source);
  // The header row: the same template run on the column titles.
  const titles: Record<string, string> = {};
  for (const m of source.matchAll(/\{\{\s*\.([A-Za-z0-9_]+)/g)) {
    const field = m[1]!;
    titles[field] = options.headers[field] ?? field.toUpperCase();
  }
  const lines = [tpl.execute(titles), ...rows.map((r) => tpl.execute(r))];
  return tabulate(lines.map((l) => l.split("\t")), options.tabulate);
}

/** Docker's `docker inspect` output: a JSON array, 4-space indent. */
export function indentJson(value: unknown): string {
  return JSON.stringify(value, null, 4) + "\n";
}

/**
 * Natural order as the Docker CLI sorts names and port lines (`sortorder.NaturalLess`): runs of
 * digits compare as numbers, everything else byte by byte.
 */
export function naturalCompare(a: string, b: string): number {
  const chunks = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const [x, y] = [chunks(a), chunks(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const [p, q] = [x[i]!, y[i]!];
    if (p === q) continue;
    if (/^\d/.test(p) && /^\d/.test(q)) {
      const diff = Number(p) - Number(q);
      if (diff !== 0) return diff;
    }
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}
