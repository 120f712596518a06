import assert from "node:assert/strict";
import { diskUsageRows, humanSize } from "./disk.ts";

Deno.test("humanSize() prints decimal units with 4 significant digits, as Docker's CLI", () => {
  assert.equal(humanSize(0), "0B");
  assert.equal(humanSize(999), "999B");
  assert.equal(humanSize(50_000), "50kB");
  assert.equal(humanSize(4_261_234), "4.261MB");
  assert.equal(humanSize(2_000_000_000), "2GB");
});

Deno.test("diskUsageRows() counts active items and what a prune would reclaim", () => {
  const rows = diskUsageRows({
    LayersSize: 3_000,
    Images: [
      { Size: 2_000, SharedSize: -1, Containers: 1 },
      { Size: 1_000, SharedSize: -1, Containers: 0 },
    ],
    Containers: [{ State: "running", SizeRw: 100 }, { State: "exited", SizeRw: 300 }],
    Volumes: [{ UsageData: { Size: 500, RefCount: 0 } }, { UsageData: { Size: -1, RefCount: 1 } }],
  });
  assert.deepEqual(rows.map((r) => [r.Type, r.TotalCount, r.Active, r.Size, r.Reclaimable]), [
    ["Images", "2", "1", "3kB", "1kB (33%)"],
    ["Containers", "2", "1", "400B", "300B (75%)"],
    ["Local Volumes", "2", "1", "500B", "500B (100%)"],
    ["Build Cache", "0", "0", "0B", "0B"],
  ]);
  assert.equal(diskUsageRows({})[0]!.Reclaimable, "0B");
});
