import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { encodePng, markdown, ratio, table } from "./report.ts";
import type { Row } from "./suite.ts";

const row: Row = {
  id: "run-rm",
  title: "run --rm busybox true",
  unit: "ms",
  better: "lower",
  results: {
    pouch: { median: 120, min: 100, max: 150, samples: [100, 120, 150] },
    ctr: { median: 100, min: 90, max: 110, samples: [90, 100, 110] },
    dockerd: { skipped: "dockerd is not installed" },
  },
};

Deno.test("ratio() is pouch's median over the peer's, undefined when either is missing", () => {
  assertEquals(ratio(row, "ctr"), 1.2);
  assertEquals(ratio(row, "dockerd"), undefined);
  assertEquals(ratio(row, "podman"), undefined);
});

Deno.test("table() and markdown() show medians, ranges, ratios and why a peer was skipped", () => {
  const lines = table([row]);
  assertEquals(lines[1]!.includes("120 [100-150]"), true);
  assertEquals(lines[1]!.includes("1.20"), true);
  assertEquals(lines.at(-1), "dockerd skipped: dockerd is not installed (run --rm busybox true)");
  assertEquals(markdown([row])[2]!.includes("| 1.20 | - | - |"), true);
});

Deno.test("encodePng() writes chunks with valid CRCs and the filtered scanlines", () => {
  const rgb = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]);
  const png = encodePng(2, 2, rgb);
  assertEquals([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer);
  const types: string[] = [];
  let idat = new Uint8Array();
  for (let offset = 8; offset < png.length;) {
    const length = view.getUint32(offset);
    const type = new TextDecoder().decode(png.subarray(offset + 4, offset + 8));
    types.push(type);
    if (type === "IDAT") idat = png.slice(offset + 8, offset + 8 + length);
    offset += 12 + length;
  }
  assertEquals(types, ["IHDR", "IDAT", "IEND"]);
  assertEquals(
    [...new Uint8Array(inflateSync(idat))],
    [0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 9, 9, 9],
  );
});
