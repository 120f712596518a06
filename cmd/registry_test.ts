import assert from "node:assert/strict";
import { BufferWriter } from "./stream.ts";
import {
  authKey,
  configPath,
  encodeAuthHeader,
  findAuth,
  messageLine,
  ProgressDisplay,
  registryOf,
  splitRepoTag,
} from "./registry.ts";

Deno.test("registryOf() splits the registry host off a reference as Docker does", () => {
  assert.equal(registryOf("busybox"), "docker.io");
  assert.equal(registryOf("library/busybox:1"), "docker.io");
  assert.equal(registryOf("127.0.0.1:5000/x/busybox:1"), "127.0.0.1:5000");
  assert.equal(registryOf("localhost/x"), "localhost");
  assert.equal(registryOf("reg.example/x@sha256:abc"), "reg.example");
});

Deno.test("authKey() and findAuth() use Docker Hub's URL key and the http(s) forms", () => {
  assert.equal(authKey("docker.io"), "https://index.docker.io/v1/");
  assert.equal(authKey("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
  const config = {
    auths: { "https://reg:5000": { auth: "x" }, "https://index.docker.io/v1/": { auth: "h" } },
  };
  assert.deepEqual(findAuth(config, "reg:5000"), { auth: "x" });
  assert.deepEqual(findAuth(config, "docker.io"), { auth: "h" });
  assert.equal(findAuth(config, "other"), undefined);
});

Deno.test("configPath() prefers $POUCH_CONFIG, then $DOCKER_CONFIG, then ~/.docker", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.equal(configPath(env({ POUCH_CONFIG: "/a.json", DOCKER_CONFIG: "/d" })), "/a.json");
  assert.equal(configPath(env({ DOCKER_CONFIG: "/d/", HOME: "/h" })), "/d/config.json");
  assert.equal(configPath(env({ HOME: "/h" })), "/h/.docker/config.json");
});

Deno.test("encodeAuthHeader() is base64url JSON", () => {
  const header = encodeAuthHeader({ username: "a", password: "??>>" });
  assert.doesNotMatch(header, /[+/]/);
  const json = atob(header.replace(/-/g, "+").replace(/_/g, "/"));
  assert.deepEqual(JSON.parse(json), { username: "a", password: "??>>" });
});

Deno.test("splitRepoTag() gives fromImage and tag as Docker's CLI sends them", () => {
  assert.deepEqual(splitRepoTag("busybox"), { repo: "busybox", tag: "latest" });
  assert.deepEqual(splitRepoTag("127.0.0.1:5000/x:1"), { repo: "127.0.0.1:5000/x", tag: "1" });
  assert.deepEqual(splitRepoTag("x@sha256:ab"), { repo: "x", tag: "sha256:ab" });
});

Deno.test("ProgressDisplay prints plain lines without the byte counts off a terminal", async () => {
  const out = new BufferWriter();
  const display = new ProgressDisplay(out, { tty: false });
  await display.show({ status: "Pulling from library/busybox", id: "latest" });
  await display.show({ status: "Pulling fs layer", id: "abc" });
  await display.show({
    status: "Downloading",
    id: "abc",
    progressDetail: { current: 1, total: 2 },
    progress: "[=>]",
  });
  await display.show({ status: "Pull complete", id: "abc" });
  await display.show({ status: "Digest: sha256:1" });
  assert.equal(
    out.text(),
    "latest: Pulling from library/busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:1\n",
  );
});

Deno.test("ProgressDisplay redraws a layer's line in place in a terminal, with a summary", async () => {
  const out = new BufferWriter();
  let clock = 1000;
  const display = new ProgressDisplay(out, { tty: true, now: () => clock });
  await display.show({ status: "Pulling fs layer", id: "a" });
  await display.show({ status: "Pulling fs layer", id: "b" });
  clock = 1500;
  await display.show({
    status: "Downloading",
    id: "a",
    progress: "[=>]",
    progressDetail: { current: 1_000_000, total: 4_000_000 },
  });
  clock = 2000;
  await display.show({
    status: "Downloading",
    id: "a",
    progress: "[==>]",
    progressDetail: { current: 2_000_000, total: 4_000_000 },
  });
  await display.show({ status: "Pull complete", id: "b" });
  await display.show({ status: "Digest: sha256:1" });
  const clear = "\x1b[2K\r";
  assert.equal(
    out.text(),
    // a new layer: its line, then the summary below it
    `${clear}a: Pulling fs layer\n${clear}0/1 layers complete, 0.0s\n` +
      // another: up over the summary, the layer, the summary again
      `\x1b[1A${clear}b: Pulling fs layer\n${clear}0/2 layers complete, 0.0s\n` +
      // an update: up to the layer's row and back, then the summary redrawn
      `\x1b[3A${clear}a: Downloading [=>]\x1b[3B\r\x1b[1A${clear}` +
      `0/2 layers complete, 1.00MB/4.00MB, 2.00MB/s, 0.5s\n` +
      `\x1b[3A${clear}a: Downloading [==>]  2.00MB/s\x1b[3B\r\x1b[1A${clear}` +
      `0/2 layers complete, 2.00MB/4.00MB, 2.00MB/s, 1.0s\n` +
      `\x1b[2A${clear}b: Pull complete\x1b[2B\r\x1b[1A${clear}` +
      `1/2 layers complete, 2.00MB/4.00MB, 2.00MB/s, 1.0s\n` +
      "Digest: sha256:1\n",
  );
  assert.equal(messageLine({ status: "Pushed", id: "a" }), "a: Pushed");
});
