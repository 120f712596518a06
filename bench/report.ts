/**
 * The benchmark's report: a table of medians and of ratios (pouch / each peer) on stdout, the
 * same as JSON, and a chart as PNG in `bench/results/`.
 *
 * The chart has one group of bars per metric, one bar per peer: pouch's cost relative to that
 * peer on a log scale from 0.1x to 10x, with a line at 1x (left of it pouch is faster or
 * smaller). For throughputs the cost is the inverse (time per container). It is drawn as SVG and
 * converted with `rsvg-convert` (Debian's librsvg2-bin); without it, {@link encodePng} draws
 * the same bars without text, and the JSON's `chart` key says what is where.
 *
 * @module
 */
import { deflateSync } from "node:zlib";
import { which } from "./_measure.ts";
import { PEER_NAMES, type PeerName } from "./peers.ts";
import type { PeerResult, Row } from "./suite.ts";

/** Peers pouch is compared with, in the chart's order, and their bar colours. */
const PEERS: Array<{ name: Exclude<PeerName, "pouch">; color: [number, number, number] }> = [
  { name: "ctr", color: [0x4c, 0x72, 0xb0] },
  { name: "dockerd", color: [0xdd, 0x84, 0x52] },
  { name: "podman", color: [0x55, 0xa8, 0x68] },
];

function median(result: PeerResult | undefined): number | undefined {
  return result && "median" in result ? result.median : undefined;
}

/** pouch's median over the peer's (`undefined` when either is missing). */
export function ratio(row: Row, peer: PeerName): number | undefined {
  const a = median(row.results.pouch);
  const b = median(row.results[peer]);
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

/** pouch's cost relative to the peer: the ratio, inverted for throughputs. */
function costRatio(row: Row, peer: PeerName): number | undefined {
  const r = ratio(row, peer);
  return r === undefined ? undefined : row.better === "higher" ? 1 / r : r;
}

function cell(result: PeerResult | undefined, unit: string): string {
  if (!result) return "-";
  if ("skipped" in result) return "skipped";
  const digits = unit === "ms" && result.median >= 100 ? 0 : 1;
  return `${result.median.toFixed(digits)} [${result.min.toFixed(digits)}-${
    result.max.toFixed(digits)
  }]`;
}

/** The report as text lines: medians [min-max] per peer, then pouch / peer. */
export function table(rows: Row[]): string[] {
  const header = [
    "metric".padEnd(34),
    "unit".padEnd(16),
    ...PEER_NAMES.map((p) => p.padEnd(22)),
    ...PEERS.map((p) => `/${p.name}`.padStart(9)),
  ].join("");
  const lines = [header];
  for (const row of rows) {
    lines.push([
      row.title.padEnd(34),
      (row.unit + (row.better === "higher" ? " ^" : "")).padEnd(16),
      ...PEER_NAMES.map((p) => cell(row.results[p], row.unit).padEnd(22)),
      ...PEERS.map((p) => (ratio(row, p.name)?.toFixed(2) ?? "-").padStart(9)),
    ].join(""));
  }
  lines.push("(^ higher is better; ratios are pouch's median over the peer's)");
  const skips = new Map<string, string[]>();
  for (const row of rows) {
    for (const p of PEER_NAMES) {
      const r = row.results[p];
      if (!r || !("skipped" in r)) continue;
      const key = `${p} skipped: ${r.skipped}`;
      skips.set(key, [...skips.get(key) ?? [], row.title]);
    }
  }
  return [...lines, ...[...skips].map(([key, titles]) => `${key} (${titles.join("; ")})`)];
}

/** Markdown of the same table (for README). */
export function markdown(rows: Row[]): string[] {
  const lines = [
    `| metric | unit | ${PEER_NAMES.join(" | ")} | ${
      PEERS.map((p) => `pouch/${p.name}`).join(" | ")
    } |`,
    `|---|---|${PEER_NAMES.map(() => "---:").join("|")}|${PEERS.map(() => "---:").join("|")}|`,
  ];
  for (const row of rows) {
    const cells = PEER_NAMES.map((p) => cell(row.results[p], row.unit));
    const ratios = PEERS.map((p) => ratio(row, p.name)?.toFixed(2) ?? "-");
    const unit = row.unit + (row.better === "higher" ? " (higher is better)" : "");
    lines.push(`| ${row.title} | ${unit} | ${cells.join(" | ")} | ${ratios.join(" | ")} |`);
  }
  return lines;
}

/** The JSON report: machine, settings, versions and every row with its samples and ratios. */
export function json(rows: Row[], meta: Record<string, unknown>): string {
  return JSON.stringify(
    {
      ...meta,
      chart: "one group per row in this order; bars: " +
        PEERS.map((p) => `${p.name} rgb(${p.color.join(",")})`).join(", ") +
        "; length: pouch's cost / the peer's on a log scale 0.1x-10x, line at 1x",
      rows: rows.map((row) => ({
        ...row,
        ratios: Object.fromEntries(PEERS.map((p) => [`pouch/${p.name}`, ratio(row, p.name)])),
      })),
    },
    null,
    2,
  ) + "\n";
}

const WIDTH = 900;
const LABEL = 300;
const BAR = 12;
const GROUP = PEERS.length * BAR + 14;
const TOP = 50;

/** x of a cost ratio on the log scale 0.1x..10x. */
function xOf(value: number): number {
  const clamped = Math.min(10, Math.max(0.1, value));
  return LABEL + ((Math.log10(clamped) + 1) / 2) * (WIDTH - LABEL - 20);
}

/** The chart as SVG text. */
export function svg(rows: Row[], title: string): string {
  const height = TOP + rows.length * GROUP + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14">${escape(title)}</text>`,
  ];
  PEERS.forEach((p, i) => {
    const x = LABEL + i * 110;
    parts.push(`<rect x="${x}" y="28" width="10" height="10" fill="rgb(${p.color.join(",")})"/>`);
    parts.push(`<text x="${x + 14}" y="37">pouch/${p.name}</text>`);
  });
  for (const tick of [0.1, 0.2, 0.5, 1, 2, 5, 10]) {
    const x = xOf(tick);
    parts.push(
      `<line x1="${x}" y1="${TOP}" x2="${x}" y2="${height - 24}" stroke="${
        tick === 1 ? "black" : "#ddd"
      }"/>`,
      `<text x="${x}" y="${height - 10}" text-anchor="middle">${tick}x</text>`,
    );
  }
  rows.forEach((row, r) => {
    const y = TOP + r * GROUP;
    parts.push(`<text x="10" y="${y + GROUP / 2 + 2}">${escape(row.title)}</text>`);
    const pouch = row.results.pouch;
    if (pouch && "skipped" in pouch) {
      const why = pouch.skipped.startsWith("failed") ? "failed" : "skipped";
      parts.push(
        `<text x="${xOf(1) + 6}" y="${y + GROUP / 2 + 2}" fill="#c00">pouch ${why}</text>`,
      );
    }
    PEERS.forEach((p, i) => {
      const value = costRatio(row, p.name);
      if (value === undefined) return;
      const x0 = xOf(1);
      const x1 = xOf(value);
      parts.push(
        `<rect x="${Math.min(x0, x1)}" y="${y + 7 + i * BAR}" width="${
          Math.max(1, Math.abs(x1 - x0))
        }" height="${BAR - 2}" fill="rgb(${p.color.join(",")})"/>`,
        `<text x="${Math.max(x0, x1) + 3}" y="${y + 16 + i * BAR}" font-size="10">${
          value.toFixed(2)
        }</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Writes the chart to `path`: SVG through rsvg-convert, else the built-in bars. */
export async function writeChart(rows: Row[], title: string, path: string): Promise<string> {
  const rsvg = await which("rsvg-convert");
  if (rsvg) {
    const child = new Deno.Command(rsvg, {
      args: ["-f", "png", "-o", path],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(svg(rows, title)));
    await writer.close();
    if ((await child.output()).success) return "rsvg-convert";
  }
  await Deno.writeFile(path, bars(rows));
  return "built-in encoder (no text; see the JSON's chart key)";
}

/** The chart's bars as an RGB raster, encoded as PNG. */
function bars(rows: Row[]): Uint8Array {
  const height = TOP + rows.length * GROUP + 30;
  const pixels = new Uint8Array(WIDTH * height * 3).fill(255);
  const fill = (x: number, y: number, w: number, h: number, rgb: readonly number[]) => {
    for (let j = Math.max(0, y); j < Math.min(height, y + h); j++) {
      for (let i = Math.max(0, x); i < Math.min(WIDTH, x + w); i++) {
        pixels.set(rgb, (j * WIDTH + i) * 3);
      }
    }
  };
  for (const tick of [0.1, 0.2, 0.5, 1, 2, 5, 10]) {
    const rgb = tick === 1 ? [0, 0, 0] : [0xdd, 0xdd, 0xdd];
    fill(Math.round(xOf(tick)), TOP, 1, height - TOP - 24, rgb);
  }
  rows.forEach((row, r) => {
    PEERS.forEach((p, i) => {
      const value = costRatio(row, p.name);
      if (value === undefined) return;
      const x0 = Math.round(xOf(1));
      const x1 = Math.round(xOf(value));
      fill(
        Math.min(x0, x1),
        TOP + r * GROUP + 7 + i * BAR,
        Math.max(1, Math.abs(x1 - x0)),
        BAR - 2,
        p.color,
      );
    });
  });
  return encodePng(WIDTH, height, pixels);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An 8-bit RGB PNG of `width` x `height` pixels (rows of R, G, B bytes, top to bottom). */
export function encodePng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, truecolour, deflate, no filter, no interlace
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  }
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array()),
  ];
  const png = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    png.set(part, offset);
    offset += part.length;
  }
  return png;
}
