import assert from "node:assert/strict";
import { containerRow, type ContainerSummary, formatPsTable } from "./container.ts";
import {
  humanDuration,
  humanSize,
  naturalCompare,
  parseFormat,
  renderRows,
  tabulate,
} from "./format.ts";
import { imageRows } from "./image.ts";
import { bytesSize } from "./system.ts";

const now = Date.parse("2024-05-01T12:00:00Z");
const at = (secondsAgo: number) => now / 1000 - secondsAgo;

Deno.test("humanDuration() words durations as go-units does", () => {
  assert.equal(humanDuration(500), "Less than a second");
  assert.equal(humanDuration(1000), "1 second");
  assert.equal(humanDuration(45_000), "45 seconds");
  assert.equal(humanDuration(90_000), "About a minute");
  assert.equal(humanDuration(5 * 60_000), "5 minutes");
  assert.equal(humanDuration(65 * 60_000), "About an hour");
  assert.equal(humanDuration(5 * 3_600_000), "5 hours");
  assert.equal(humanDuration(3 * 86_400_000), "3 days");
  assert.equal(humanDuration(21 * 86_400_000), "3 weeks");
  assert.equal(humanDuration(90 * 86_400_000), "3 months");
  assert.equal(humanDuration(3 * 365 * 86_400_000), "3 years");
});

Deno.test("humanSize() and bytesSize() use decimal and binary units", () => {
  assert.equal(humanSize(0), "0B");
  assert.equal(humanSize(999), "999B");
  assert.equal(humanSize(1500), "1.5kB");
  assert.equal(humanSize(4_261_000), "4.26MB");
  assert.equal(humanSize(1_234_567_890), "1.23GB");
  assert.equal(bytesSize(16_000_000_000), "14.9GiB");
  assert.equal(bytesSize(1024), "1KiB");
});

Deno.test("tabulate() pads every cell but the last like tabwriter(10, 1, 3)", () => {
  assert.equal(
    tabulate([["A", "LONG HEADER", "X"], ["value", "v", "last"]]),
    "A         LONG HEADER   X\nvalue     v             last\n",
  );
});

const containers: ContainerSummary[] = [
  {
    Id: "71b9c1f2e3d4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0",
    Names: ["/web"],
    Image: "busybox:latest",
    Command: "sleep 100000000000000000",
    Created: at(5),
    State: "running",
    Status: "Up 5 seconds",
    HostConfig: { NetworkMode: "bridge", Runtime: "runc" },
    Ports: [{ IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp" }],
  },
  {
    Id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    Names: ["/db"],
    Image: "registry.example.com/library/postgres:16",
    Created: at(180),
    State: "exited",
    Status: "Exited (0) 3 minutes ago",
  },
];

Deno.test("formatPsTable() prints PouchContainer's columns with 6-char IDs", () => {
  assert.equal(
    formatPsTable(containers, { noTrunc: false, now }),
    [
      "Name   ID       Status                     Created         Image                                      Runtime",
      "web    71b9c1   Up 5 seconds               5 seconds ago   busybox:latest                             runc",
      "db     012345   Exited (0) 3 minutes ago   3 minutes ago   registry.example.com/library/postgres:16   runc",
      "",
    ].join("\n"),
  );
});

Deno.test("containerRow() gives Docker's template fields", () => {
  const row = containerRow(containers[0]!, { noTrunc: false, now });
  assert.equal(row.ID, "71b9c1f2e3d4");
  assert.equal(row.Names, "web");
  assert.equal(row.Command, '"sleep 1000000000000…"');
  assert.equal(row.RunningFor, "5 seconds ago");
  assert.equal(row.Ports, "0.0.0.0:8080->80/tcp");
  const rendered = renderRows(
    [row],
    parseFormat("table {{.ID}}\\t{{.Names}}"),
    { headers: { ID: "CONTAINER ID", Names: "NAMES" }, defaultTable: "" },
  );
  assert.equal(rendered, "CONTAINER ID   NAMES\n71b9c1f2e3d4   web\n");
  assert.equal(
    renderRows([row], parseFormat("json"), { headers: {}, defaultTable: "" }).split("\n").length,
    2,
  );
});

Deno.test("imageRows() gives one row per tag, <none> when untagged", () => {
  const rows = imageRows([
    {
      Id: "sha256:" + "ab".repeat(32),
      RepoTags: ["busybox:latest", "localhost:5000/busybox:v1"],
      RepoDigests: ["busybox@sha256:" + "cd".repeat(32)],
      Created: at(3600 * 24 * 3),
      Size: 4_261_000,
    },
    { Id: "sha256:" + "ef".repeat(32), RepoTags: [], Created: at(10), Size: 100 },
  ], { noTrunc: false, now });
  assert.deepEqual(rows.map((r) => [r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size]), [
    ["busybox", "latest", "abababababab", "3 days ago", "4.26MB"],
    ["localhost:5000/busybox", "v1", "abababababab", "3 days ago", "4.26MB"],
    ["<none>", "<none>", "efefefefefef", "10 seconds ago", "100B"],
  ]);
  const table = renderRows(rows.slice(0, 1), parseFormat(undefined), {
    headers: {
      Repository: "REPOSITORY",
      Tag: "TAG",
      ID: "IMAGE ID",
      CreatedSince: "CREATED",
      Size: "SIZE",
    },
    defaultTable: "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
  });
  assert.equal(
    table,
    "REPOSITORY   TAG       IMAGE ID       CREATED      SIZE\nbusybox      latest    abababababab   3 days ago   4.26MB\n",
  );
});

Deno.test("naturalCompare() orders digit runs as numbers, the rest byte by byte", () => {
  const lines = [
    "443/tcp -> [::]:1",
    "net10",
    "80/tcp -> 0.0.0.0:1",
    "net9",
    "443/tcp -> 0.0.0.0:1",
  ];
  assert.deepEqual(lines.sort(naturalCompare), [
    "80/tcp -> 0.0.0.0:1",
    "443/tcp -> 0.0.0.0:1",
    "443/tcp -> [::]:1",
    "net9",
    "net10",
  ]);
});
