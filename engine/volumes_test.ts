import assert from "node:assert/strict";
import { kindOf } from "./errors.ts";
import { anonymousDestinations, mountPointsOf, volumeBinds, withVolumeSources } from "./volumes.ts";

Deno.test("volumeBinds() picks named volumes and leaves host paths to the spec", () => {
  const binds = ["/host:/h", "data:/data:ro", "cache:/c", "bad"];
  assert.deepEqual(volumeBinds(binds), [
    { index: 1, name: "data", destination: "/data", mode: "ro", readOnly: true },
    { index: 2, name: "cache", destination: "/c", mode: "", readOnly: false },
  ]);
  for (const bad of ["../etc:/x", "-x:/x", "a..b:/x"]) {
    assert.throws(() => volumeBinds([bad]), (err: unknown) => kindOf(err) === "InvalidArgument");
  }
});

Deno.test("withVolumeSources() rewrites only the volume binds, in a copy", () => {
  const hostConfig = { Binds: ["/host:/h", "data:/data:ro", "cache:/c"] };
  const named = volumeBinds(hostConfig.Binds);
  const rewritten = withVolumeSources(hostConfig, named, (b) => `/v/${b.name}/_data`);
  assert.deepEqual(rewritten.Binds, ["/host:/h", "/v/data/_data:/data:ro", "/v/cache/_data:/c"]);
  assert.deepEqual(hostConfig.Binds, ["/host:/h", "data:/data:ro", "cache:/c"]);
});

Deno.test("mountPointsOf() answers Docker's inspect Mounts", () => {
  const attached = new Map([[1, { name: "data", driver: "local", source: "/v/data/_data" }]]);
  assert.deepEqual(mountPointsOf(["/host:/h:ro,rshared", "data:/data"], attached), [
    {
      Type: "bind",
      Source: "/host",
      Destination: "/h",
      Mode: "ro,rshared",
      RW: false,
      Propagation: "rshared",
    },
    {
      Type: "volume",
      Name: "data",
      Source: "/v/data/_data",
      Destination: "/data",
      Driver: "local",
      Mode: "z",
      RW: true,
      Propagation: "",
    },
  ]);
});

Deno.test("anonymousDestinations skips mounted paths and refuses relative ones", () => {
  const paths = anonymousDestinations(
    { "/data/": {}, "/logs": {}, "/cache": {}, "/tmp": {}, "/data": {} },
    {
      Binds: ["named:/logs"],
      Mounts: [{ Type: "tmpfs", Target: "/cache/" }],
      Tmpfs: { "/tmp": "" },
    },
  );
  assert.deepEqual(paths, ["/data"]);
  assert.throws(() => anonymousDestinations({ "rel/dir": {} }, {}), /absolute/);
  assert.throws(() => anonymousDestinations({ "/a/../b": {} }, {}), /absolute/);
  assert.deepEqual(anonymousDestinations(undefined, {}), []);
});
