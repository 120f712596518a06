import assert from "node:assert/strict";
import {
  decodeRegistryAuth,
  encodeRegistryAuth,
  endpointsFor,
  formatProgress,
  isInsecureRegistry,
  parseWwwAuthenticate,
  progressMessage,
  RegistryClient,
  registryKey,
} from "./registry.ts";
import { selectManifest } from "./image.ts";
import { isInvalidArgument } from "./errors.ts";
import { loadConfig, parseMirrors } from "./config.ts";

Deno.test("parseWwwAuthenticate() reads a bearer challenge with quoted parameters", () => {
  assert.deepEqual(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    }],
  );
});

Deno.test("parseWwwAuthenticate() reads basic, escapes, unquoted values and two challenges", () => {
  assert.deepEqual(parseWwwAuthenticate('Basic realm="a \\"b\\" c"'), [
    { scheme: "basic", params: { realm: 'a "b" c' } },
  ]);
  assert.deepEqual(
    parseWwwAuthenticate('Basic realm=reg, Bearer realm="http://t/token", error="invalid_token"'),
    [
      { scheme: "basic", params: { realm: "reg" } },
      { scheme: "bearer", params: { realm: "http://t/token", error: "invalid_token" } },
    ],
  );
  assert.deepEqual(parseWwwAuthenticate(""), []);
});

Deno.test("decodeRegistryAuth() decodes base64url JSON, padded or not", () => {
  const auth = { username: "alice", password: "s3cret?>", serveraddress: "127.0.0.1:5000" };
  const header = encodeRegistryAuth(auth);
  assert.deepEqual(decodeRegistryAuth(header), auth);
  assert.deepEqual(decodeRegistryAuth(header.replace(/=+$/, "")), auth);
  // Standard base64, as older clients send it.
  assert.deepEqual(decodeRegistryAuth(btoa(JSON.stringify(auth))), auth);
  // The config file's `auth` form.
  assert.deepEqual(decodeRegistryAuth(encodeRegistryAuth({ auth: btoa("bob:pw:x") })), {
    username: "bob",
    password: "pw:x",
  });
});

Deno.test("decodeRegistryAuth() treats empty and {} as anonymous, garbage as a bad request", () => {
  assert.equal(decodeRegistryAuth(undefined), undefined);
  assert.equal(decodeRegistryAuth(""), undefined);
  assert.equal(decodeRegistryAuth(encodeRegistryAuth({})), undefined);
  for (const bad of ["!!!", btoa("not json"), btoa("[1]")]) {
    assert.throws(() => decodeRegistryAuth(bad), isInvalidArgument);
  }
});

Deno.test("endpointsFor() puts the mirrors in order before the registry, for pulls only", () => {
  const config = {
    mirrors: {
      "reg.example:5000": ["http://m1:5001/", "https://m2"],
      "docker.io": ["https://hub-mirror"],
    },
  };
  assert.deepEqual(endpointsFor("reg.example:5000", config, { pull: true }), [
    { url: "http://m1:5001", mirror: true },
    { url: "https://m2", mirror: true },
    { url: "https://reg.example:5000", mirror: false },
  ]);
  assert.deepEqual(endpointsFor("reg.example:5000", config, { pull: false }), [
    { url: "https://reg.example:5000", mirror: false },
  ]);
  assert.deepEqual(endpointsFor("docker.io", config, { pull: true }), [
    { url: "https://hub-mirror", mirror: true },
    { url: "https://registry-1.docker.io", mirror: false },
  ]);
  assert.deepEqual(endpointsFor("other.example", config, { pull: true }), [
    { url: "https://other.example", mirror: false },
  ]);
});

Deno.test("endpointsFor() tries HTTPS then HTTP for insecure and loopback registries", () => {
  const config = { insecure: ["reg.lan:5000"] };
  for (const host of ["reg.lan:5000", "127.0.0.1:5000", "localhost:5000", "[::1]:5000"]) {
    assert.ok(isInsecureRegistry(host, config.insecure), host);
    assert.deepEqual(endpointsFor(host, config, { pull: false }).map((e) => e.url), [
      `https://${host}`,
      `http://${host}`,
    ]);
  }
  assert.equal(isInsecureRegistry("reg.lan:5001", config.insecure), false);
});

Deno.test("registryKey() normalises docker login's server forms", () => {
  assert.equal(registryKey(undefined), "docker.io");
  assert.equal(registryKey("https://index.docker.io/v1/"), "docker.io");
  assert.equal(registryKey("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
  assert.equal(registryKey("reg.example"), "reg.example");
});

Deno.test("selectManifest() picks the platform's entry and skips attestations", () => {
  const entry = (digest: string, architecture: string, variant?: string, os = "linux") => ({
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest,
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });
  const entries = [
    entry("sha256:arm", "arm", "v7"),
    entry("sha256:arm64", "arm64", "v8"),
    entry("sha256:amd", "amd64"),
    entry("sha256:att", "unknown", undefined, "unknown"),
  ];
  assert.equal(
    selectManifest(entries, { os: "linux", architecture: "amd64" })?.digest,
    "sha256:amd",
  );
  assert.equal(
    selectManifest(entries, { os: "linux", architecture: "arm64" })?.digest,
    "sha256:arm64",
  );
  assert.equal(
    selectManifest(entries, { os: "linux", architecture: "arm", variant: "v6" }),
    undefined,
  );
  assert.equal(selectManifest([entries[0]!], { os: "linux", architecture: "amd64" }), undefined);
});

Deno.test("formatProgress() draws Docker's bar; progressMessage() carries the detail", () => {
  assert.equal(
    formatProgress(1_500_000, 3_000_000),
    `[${"=".repeat(25)}>${" ".repeat(24)}]   1.50MB/3.00MB`,
  );
  assert.equal(formatProgress(10, 10), `[${"=".repeat(50)}]      10B/10B`);
  assert.equal(formatProgress(2048, 0), "2.05kB");
  assert.deepEqual(progressMessage("Downloading", "abc", { current: 1, total: 2 }), {
    status: "Downloading",
    progressDetail: { current: 1, total: 2 },
    progress: formatProgress(1, 2),
    id: "abc",
  });
  assert.deepEqual(progressMessage("Pull complete", "abc"), {
    status: "Pull complete",
    progressDetail: {},
    id: "abc",
  });
});

Deno.test("parseMirrors() takes a map of registries or a plain list for docker.io", () => {
  assert.deepEqual(parseMirrors(["https://m1/", "http://m2"], "c.json"), {
    "docker.io": ["https://m1", "http://m2"],
  });
  assert.deepEqual(
    parseMirrors({ "reg:5000": ["http://m:1"], "index.docker.io": "https://h" }, "c"),
    {
      "reg:5000": ["http://m:1"],
      "docker.io": ["https://h"],
    },
  );
  assert.throws(() => parseMirrors({ r: ["ftp://x"] }, "c"), isInvalidArgument);
  assert.throws(() => parseMirrors("x", "c"), isInvalidArgument);
});

Deno.test("loadConfig() reads the registry flags and config keys; flags win per registry", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        "registry-mirrors": { "reg:5000": ["http://file-mirror"], "docker.io": ["https://hub"] },
        "insecure-registries": ["reg:5000"],
        "image-proxy": "http://127.0.0.1:65001",
      }),
    );
    const fromFile = await loadConfig(["--config-file", file]);
    assert.ok(fromFile !== "help");
    assert.deepEqual(fromFile.registryMirrors, {
      "reg:5000": ["http://file-mirror"],
      "docker.io": ["https://hub"],
    });
    assert.deepEqual(fromFile.insecureRegistries, ["reg:5000"]);
    assert.equal(fromFile.imageProxy, "http://127.0.0.1:65001");

    const withFlags = await loadConfig([
      "--config-file",
      file,
      "--registry-mirror",
      "reg:5000=http://a",
      "--registry-mirror",
      "reg:5000=http://b",
      "--registry-mirrors",
      "https://hub2",
      "--insecure-registries",
      "x:1",
      "--insecure-registries",
      "y:2",
    ]);
    assert.ok(withFlags !== "help");
    assert.deepEqual(withFlags.registryMirrors, {
      "reg:5000": ["http://a", "http://b"],
      "docker.io": ["https://hub2"],
    });
    assert.deepEqual(withFlags.insecureRegistries, ["x:1", "y:2"]);
    await assert.rejects(() => loadConfig(["--config-file", file, "--registry-mirror", "nourl"]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RegistryClient.route() relays HTTPS of listed insecure hosts only", async () => {
  const client = new RegistryClient({
    insecure: ["127.0.0.1:5443", "tls.example:443"],
    imageProxy: "http://127.0.0.1:3128",
  });
  try {
    const listed = await client.route("https://127.0.0.1:5443/v2/x/manifests/1", true);
    assert.equal(listed.relayed, true);
    assert.equal(listed.url, "http://127.0.0.1:5443/v2/x/manifests/1");
    assert.ok(listed.client);
    // A host listed with port 443 matches a URL without a port.
    assert.equal((await client.route("https://tls.example/v2/", false)).relayed, true);
    // A loopback host that is not listed keeps certificate verification.
    const loopback = await client.route("https://127.0.0.1:5000/v2/", true);
    assert.deepEqual(loopback, { url: "https://127.0.0.1:5000/v2/", relayed: false });
    // Plain HTTP of a listed host is sent as it is; pulls go through the proxy, pushes do not.
    const pull = await client.route("http://127.0.0.1:5443/v2/", false);
    assert.equal(pull.relayed, false);
    assert.ok(pull.client);
    assert.equal((await client.route("http://127.0.0.1:5443/v2/", true)).client, undefined);
  } finally {
    await client.close();
  }
});
