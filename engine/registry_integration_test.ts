/**
 * Distribution end to end: a real daemon pulling from and pushing to real `docker-registry`
 * instances on 127.0.0.1 (plain, htpasswd basic auth, bearer tokens from a test token server,
 * a pull-through cache as a mirror), through pouch's CLI and the Docker CLI. No traffic leaves
 * 127.0.0.1.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { busyboxTarball, startDaemon, type TestDaemon } from "../testdata/harness.ts";
import {
  buildMultiLayer,
  freePort,
  registryRequest,
  skopeoPush,
  startFlakyProxy,
  startForwardProxy,
  startRegistry,
  type TestRegistry,
} from "../testdata/registry.ts";
import { waitFor } from "./testing.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const decoder = new TextDecoder();
const MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, " +
  "application/vnd.docker.distribution.manifest.v2+json";

/** Runs pouch's CLI against `daemon` with `env` added (a credentials file of the test's own). */
async function pouch(
  daemon: TestDaemon,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}main.ts`, "-H", `unix://${daemon.socket}`, ...args],
    env: { POUCH_CONFIG: `${daemon.dir}/pouch-auth.json`, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function ok(daemon: TestDaemon, args: string[]): Promise<string> {
  const result = await pouch(daemon, args);
  assert.equal(
    result.code,
    0,
    `pouch ${args.join(" ")} exited ${result.code}: ${result.stderr}${result.stdout}`,
  );
  return result.stdout;
}

async function fails(daemon: TestDaemon, args: string[], pattern: RegExp): Promise<void> {
  const result = await pouch(daemon, args);
  assert.notEqual(result.code, 0, `pouch ${args.join(" ")} succeeded: ${result.stdout}`);
  assert.match(result.stderr, pattern);
}

async function hasImage(daemon: TestDaemon, name: string): Promise<boolean> {
  return (await daemon.api("GET", `/images/${encodeURIComponent(name)}/json`)).status === 200;
}

/** The manifest digest and layer digests of `repo:tag` in a plain registry. */
async function manifestOf(registry: TestRegistry, repo: string, tag: string) {
  const res = await registryRequest(`${registry.url}/v2/${repo}/manifests/${tag}`, {
    headers: { Accept: MANIFEST_TYPES },
  });
  assert.equal(res.status, 200, res.body);
  const manifest = JSON.parse(res.body) as {
    mediaType: string;
    layers: Array<{ digest: string; mediaType: string }>;
    config: { digest: string };
  };
  return { digest: res.headers.get("Docker-Content-Digest")!, size: res.body.length, manifest };
}

/** The digests in the daemon's containerd content store (`ctr content ls`). */
async function ctrContent(daemon: TestDaemon): Promise<string> {
  const out = await new Deno.Command("ctr", {
    args: [
      "-a",
      `${daemon.home}/containerd/containerd.sock`,
      "-n",
      "default",
      "content",
      "ls",
      "-q",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return decoder.decode(out.stdout);
}

async function withLogs<T>(daemon: TestDaemon, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- daemon log ---\n${await daemon.log()}`, {
      cause: err,
    });
  }
}

const hostArch = Deno.build.arch === "x86_64" ? "amd64" : "arm64";
const otherArch = hostArch === "amd64" ? "arm64" : "amd64";

Deno.test("pull, push and save against a plain registry", async (t) => {
  const tarball = await busyboxTarball();
  const ociTarball = tarball.replace(/busybox\.tar$/, "busybox-oci.tar");
  await using registry = await startRegistry();
  await using daemon = await startDaemon();
  const work = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-registry-it-" });
  const host = registry.host;
  try {
    await withLogs(daemon, async () => {
      await ok(daemon, ["load", "-i", tarball]);

      await t.step("push then pull round trip of an uncompressed image", async () => {
        await ok(daemon, ["tag", "busybox", `${host}/x/busybox:1`]);
        const pushed = await ok(daemon, ["push", `${host}/x/busybox:1`]);
        assert.match(pushed, new RegExp(`The push refers to repository \\[${host}/x/busybox\\]`));
        assert.match(pushed, /: Pushed/);
        assert.match(pushed, /1: digest: sha256:[0-9a-f]{64} size: \d+/);
        const { manifest } = await manifestOf(registry, "x/busybox", "1");
        assert.equal(manifest.layers[0]!.mediaType, "application/vnd.docker.image.rootfs.diff.tar");

        await ok(daemon, ["rmi", `${host}/x/busybox:1`]);
        assert.equal(await hasImage(daemon, `${host}/x/busybox:1`), false);
        const pulled = await ok(daemon, ["pull", `${host}/x/busybox:1`]);
        assert.match(pulled, /1: Pulling from x\/busybox/);
        assert.match(pulled, /Pull complete/);
        assert.match(pulled, /Digest: sha256:[0-9a-f]{64}/);
        assert.match(pulled, new RegExp(`Status: Downloaded newer image for ${host}/x/busybox:1`));
        assert.equal(
          await ok(daemon, ["run", "--rm", `${host}/x/busybox:1`, "echo", "hi"]),
          "hi\n",
        );
        const again = await ok(daemon, ["pull", `${host}/x/busybox:1`]);
        assert.match(again, /Status: Image is up to date/);
        const pushedAgain = await ok(daemon, ["push", `${host}/x/busybox:1`]);
        assert.match(pushedAgain, /Layer already exists/);
      });

      await t.step("a multi-layer gzip image pulls, runs, and mounts across repos", async () => {
        const source = await buildMultiLayer(ociTarball, `${work}/multi`, { extra: 3 });
        await skopeoPush(source, `${host}/x/multi:1`);
        const pulled = await ok(daemon, ["pull", `${host}/x/multi:1`]);
        assert.equal(pulled.match(/Pull complete/g)?.length, 4, pulled);
        const inspect = JSON.parse(await ok(daemon, ["image", "inspect", `${host}/x/multi:1`]));
        assert.equal(inspect[0].RootFS.Layers.length, 4);
        assert.equal(
          await ok(daemon, ["run", "--rm", `${host}/x/multi:1`, "sh", "-c", "wc -c < /layer-3"]),
          "65536\n",
        );
        await ok(daemon, ["tag", `${host}/x/multi:1`, `${host}/y/multi:1`]);
        const pushed = await ok(daemon, ["push", `${host}/y/multi:1`]);
        assert.match(pushed, /Mounted from x\/multi/);
      });

      await t.step("an index gives the host's platform; another platform only fails", async () => {
        const { digest, size } = await manifestOf(registry, "x/busybox", "1");
        const mediaType = "application/vnd.docker.distribution.manifest.v2+json";
        const index = (archs: string[]) =>
          JSON.stringify({
            schemaVersion: 2,
            mediaType: "application/vnd.oci.image.index.v1+json",
            manifests: archs.map((architecture) => ({
              mediaType,
              digest,
              size,
              platform: { os: "linux", architecture },
            })),
          });
        for (const [tag, archs] of [["multiarch", [otherArch, hostArch]], ["other", [otherArch]]]) {
          const put = await registryRequest(`${registry.url}/v2/x/busybox/manifests/${tag}`, {
            method: "PUT",
            headers: { "Content-Type": "application/vnd.oci.image.index.v1+json" },
            body: index(archs as string[]),
          });
          assert.equal(put.status, 201, put.body);
        }
        await ok(daemon, ["pull", `${host}/x/busybox:multiarch`]);
        assert.equal(
          await ok(daemon, ["run", "--rm", `${host}/x/busybox:multiarch`, "echo", "ok"]),
          "ok\n",
        );
        await fails(
          daemon,
          ["pull", `${host}/x/busybox:other`],
          new RegExp(`no matching manifest for linux/${hostArch} in the manifest list entries`),
        );
        assert.equal(await hasImage(daemon, `${host}/x/busybox:other`), false);
      });

      await t.step("unknown tags and unreachable registries are clear errors", async () => {
        await fails(
          daemon,
          ["pull", `${host}/x/busybox:nope`],
          /manifest for .*x\/busybox:nope not found: manifest unknown/,
        );
        await fails(daemon, ["pull", `${host}/x/nothing:1`], /not found/);
        const dead = `127.0.0.1:${freePort()}`;
        await fails(
          daemon,
          ["pull", `${dead}/x/busybox:1`],
          new RegExp(`registry ${dead} is unreachable .*connection refused`, "i"),
        );
        const api = await daemon.api("POST", `/images/create?fromImage=${host}/x/busybox&tag=nope`);
        assert.equal(api.status, 404, api.body);
      });

      await t.step("save writes an archive that load reads back", async () => {
        await ok(daemon, ["save", "-o", `${work}/saved.tar`, `${host}/x/multi:1`, "busybox"]);
        const listing = decoder.decode(
          (await new Deno.Command("tar", { args: ["-tf", `${work}/saved.tar`], stdout: "piped" })
            .output()).stdout,
        );
        for (const name of ["manifest.json", "index.json", "oci-layout", "repositories"]) {
          assert.match(listing, new RegExp(`^${name}$`, "m"));
        }
        await ok(daemon, ["rmi", `${host}/x/multi:1`]);
        const loaded = await ok(daemon, ["load", "-i", `${work}/saved.tar`]);
        assert.match(loaded, new RegExp(`Loaded image: ${host}/x/multi:1`));
        assert.equal(
          await ok(daemon, ["run", "--rm", `${host}/x/multi:1`, "sh", "-c", "wc -c < /layer-1"]),
          "65536\n",
        );
        const api = await daemon.api("GET", `/images/${encodeURIComponent("nosuch:1")}/get`);
        assert.equal(api.status, 404);
      });

      await t.step("run pulls a missing image first", async () => {
        await ok(daemon, ["rmi", `${host}/x/busybox:1`]);
        const run = await pouch(daemon, ["run", "--rm", `${host}/x/busybox:1`, "echo", "pulled"]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout, "pulled\n");
        assert.match(run.stderr, new RegExp(`Unable to find image '${host}/x/busybox:1' locally`));
        assert.match(run.stderr, /Pull complete/);
      });

      await t.step("docker pull and docker push through pouch's API", async () => {
        await ok(daemon, ["rmi", `${host}/x/busybox:1`]);
        const pull = await daemon.docker(["pull", `${host}/x/busybox:1`]);
        assert.equal(pull.code, 0, pull.stderr);
        assert.match(pull.stdout, /Downloaded newer image/);
        const tag = await daemon.docker(["tag", "busybox", `${host}/d/busybox:7`]);
        assert.equal(tag.code, 0, tag.stderr);
        const push = await daemon.docker(["push", `${host}/d/busybox:7`]);
        assert.equal(push.code, 0, push.stderr);
        assert.match(push.stdout, /7: digest: sha256:/);
        await manifestOf(registry, "d/busybox", "7");
      });

      await t.step("a corrupted blob is rejected and no image is recorded", async () => {
        const source = await buildMultiLayer(ociTarball, `${work}/corrupt`, { extra: 1 });
        await skopeoPush(source, `${host}/x/corrupt:1`);
        const { manifest } = await manifestOf(registry, "x/corrupt", "1");
        const path = registry.blobPath(manifest.layers[manifest.layers.length - 1]!.digest);
        const data = await Deno.readFile(path);
        data[Math.floor(data.length / 2)]! ^= 0xff;
        await Deno.writeFile(path, data);
        await fails(daemon, ["pull", `${host}/x/corrupt:1`], /failed verification/);
        assert.equal(await hasImage(daemon, `${host}/x/corrupt:1`), false);
      });

      await t.step("a pull cut short resumes and reuses the complete layers", async () => {
        const source = await buildMultiLayer(ociTarball, `${work}/resume`, { extra: 2 });
        await skopeoPush(source, `${host}/x/resume:1`);
        const { manifest } = await manifestOf(registry, "x/resume", "1");
        const first = manifest.layers[1]!.digest.slice(7, 19);
        const last = manifest.layers[2]!.digest;
        await using proxy = startFlakyProxy(registry.url, { digest: last, mode: "truncate" });
        const name = `${proxy.host}/x/resume:1`;
        await fails(daemon, ["pull", name], /truncated|stalled|closed|error/i);
        assert.equal(await hasImage(daemon, name), false);
        const again = await ok(daemon, ["pull", name]);
        assert.match(again, new RegExp(`${first}: Already exists`));
        assert.match(again, /Downloaded newer image/);
      });

      await t.step("a pull interrupted by a daemon crash completes after a restart", async () => {
        const source = await buildMultiLayer(ociTarball, `${work}/crash`, { extra: 2 });
        await skopeoPush(source, `${host}/x/crash:1`);
        const { manifest } = await manifestOf(registry, "x/crash", "1");
        const first = manifest.layers[1]!.digest.slice(7, 19);
        const last = manifest.layers[2]!.digest;
        await using proxy = startFlakyProxy(registry.url, { digest: last, mode: "hang" });
        const name = `${proxy.host}/x/crash:1`;
        const pulling = pouch(daemon, ["pull", name]);
        await proxy.broken;
        // Let the other layer reach containerd's content store before the crash.
        const firstDigest = manifest.layers[1]!.digest;
        await waitFor(async () => (await ctrContent(daemon)).includes(firstDigest), {
          timeoutMs: 10_000,
        });
        await daemon.crash();
        assert.notEqual((await pulling).code, 0);
        await daemon.start();
        assert.equal(await hasImage(daemon, name), false);
        const again = await ok(daemon, ["pull", name]);
        assert.match(again, new RegExp(`${first}: Already exists`));
        assert.equal(
          await ok(daemon, ["run", "--rm", name, "sh", "-c", "wc -c < /layer-2"]),
          "65536\n",
        );
      });
    });
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});

Deno.test("basic auth: login, pull and push with credentials, logout", async (t) => {
  const tarball = await busyboxTarball();
  await using registry = await startRegistry({ auth: "htpasswd", users: { alice: "s3cret" } });
  await using daemon = await startDaemon();
  const host = registry.host;
  await withLogs(daemon, async () => {
    await ok(daemon, ["load", "-i", tarball]);
    await ok(daemon, ["tag", "busybox", `${host}/private/busybox:1`]);

    await t.step("without credentials the registry refuses", async () => {
      await fails(daemon, ["push", `${host}/private/busybox:1`], /unauthorized|denied/i);
    });

    await t.step("a wrong password is refused", async () => {
      await fails(
        daemon,
        ["login", "-u", "alice", "-p", "wrong", host],
        /login attempt to .* failed with status: 401 Unauthorized/,
      );
    });

    await t.step("login stores the credentials; push and pull use them", async () => {
      const login = await ok(daemon, ["login", "-u", "alice", "-p", "s3cret", host]);
      assert.match(login, /Login Succeeded/);
      const config = JSON.parse(await Deno.readTextFile(`${daemon.dir}/pouch-auth.json`));
      assert.equal(config.auths[host].auth, btoa("alice:s3cret"));
      await ok(daemon, ["push", `${host}/private/busybox:1`]);
      await ok(daemon, ["rmi", `${host}/private/busybox:1`]);
      await ok(daemon, ["pull", `${host}/private/busybox:1`]);
    });

    await t.step("logout removes them and the pull is refused again", async () => {
      assert.match(await ok(daemon, ["logout", host]), /Removing login credentials/);
      await ok(daemon, ["rmi", `${host}/private/busybox:1`]);
      await fails(daemon, ["pull", `${host}/private/busybox:1`], /pull access denied|unauthorized/);
    });

    await t.step("docker login goes through POST /auth", async () => {
      const bad = await daemon.docker(["login", "-u", "alice", "--password-stdin", host], {
        stdin: new TextEncoder().encode("nope\n"),
      });
      assert.notEqual(bad.code, 0);
      const good = await daemon.docker(["login", "-u", "alice", "--password-stdin", host], {
        stdin: new TextEncoder().encode("s3cret\n"),
      });
      assert.equal(good.code, 0, good.stderr);
      const pull = await daemon.docker(["pull", `${host}/private/busybox:1`]);
      assert.equal(pull.code, 0, pull.stderr);
    });
  });
});

Deno.test("bearer tokens from a token server, cached per scope", async (t) => {
  const tarball = await busyboxTarball();
  await using registry = await startRegistry({ auth: "token", users: { bob: "t0ken" } });
  await using daemon = await startDaemon();
  const host = registry.host;
  await withLogs(daemon, async () => {
    await ok(daemon, ["load", "-i", tarball]);
    await ok(daemon, ["tag", "busybox", `${host}/team/busybox:1`]);

    await t.step("a wrong password gets no token", async () => {
      await fails(daemon, ["login", "-u", "bob", "-p", "wrong", host], /401 Unauthorized/);
    });

    await t.step("push and pull with a token", async () => {
      await ok(daemon, ["login", "-u", "bob", "-p", "t0ken", host]);
      await ok(daemon, ["push", `${host}/team/busybox:1`]);
      await ok(daemon, ["rmi", `${host}/team/busybox:1`]);
      const before = registry.tokenRequests.length;
      await ok(daemon, ["pull", `${host}/team/busybox:1`]);
      const scopes = registry.tokenRequests.slice(before).map((u) => u.searchParams.get("scope"));
      // One token for the pull's scope serves the manifest and every blob request.
      assert.deepEqual(scopes, ["repository:team/busybox:pull"]);
      assert.ok(
        registry.tokenRequests.some((u) =>
          u.searchParams.get("scope") === "repository:team/busybox:pull,push"
        ),
      );
      assert.equal(await ok(daemon, ["run", "--rm", `${host}/team/busybox:1`, "echo", "t"]), "t\n");
    });
  });
});

Deno.test("mirrors of a registry that is not docker.io, and falling back", async (t) => {
  const tarball = await busyboxTarball();
  await using origin = await startRegistry();
  await skopeoPush(`docker-archive:${tarball}`, `${origin.host}/x/busybox:1`);
  await using mirror = await startRegistry({ proxyOf: origin.url });
  const dead = `http://127.0.0.1:${freePort()}`;
  await using daemon = await startDaemon({
    config: { "registry-mirrors": { [origin.host]: [dead, mirror.url] } },
  });
  const name = `${origin.host}/x/busybox:1`;
  await withLogs(daemon, async () => {
    await t.step("a dead mirror is skipped; the pull-through cache serves the image", async () => {
      await ok(daemon, ["pull", name]);
      const log = await mirror.log();
      assert.match(log, /GET \/v2\/x\/busybox\/manifests\/1/);
      assert.match(log, /GET \/v2\/x\/busybox\/blobs\/sha256:[0-9a-f]{64}/);
      const { manifest } = await manifestOf(origin, "x/busybox", "1");
      const blob = mirror.blobPath(manifest.layers[0]!.digest);
      await waitFor(() => Deno.stat(blob).then(() => true, () => false), { timeoutMs: 10_000 });
      assert.match(await daemon.log(), new RegExp(`mirror ${dead} failed`));
    });

    await t.step("with every mirror down the origin serves the pull", async () => {
      await ok(daemon, ["rmi", name]);
      await mirror.stop();
      const originLog = (await origin.log()).length;
      await ok(daemon, ["pull", name]);
      assert.match((await origin.log()).slice(originLog), /GET \/v2\/x\/busybox\/manifests\/1/);
      assert.equal(await ok(daemon, ["run", "--rm", name, "echo", "m"]), "m\n");
    });
  });
});

Deno.test("an insecure registry with an untrusted certificate", async (t) => {
  const tarball = await busyboxTarball();
  await using registry = await startRegistry({ tls: true });
  const host = registry.host;
  await using daemon = await startDaemon({ config: { "insecure-registries": [host] } });
  await withLogs(daemon, async () => {
    await ok(daemon, ["load", "-i", tarball]);

    await t.step("a listed host is pushed to and pulled from over HTTPS", async () => {
      await ok(daemon, ["tag", "busybox", `${host}/tls/busybox:1`]);
      const pushed = await ok(daemon, ["push", `${host}/tls/busybox:1`]);
      assert.match(pushed, /1: digest: sha256:[0-9a-f]{64}/);
      await ok(daemon, ["rmi", `${host}/tls/busybox:1`]);
      const pulled = await ok(daemon, ["pull", `${host}/tls/busybox:1`]);
      assert.match(pulled, /Downloaded newer image/);
      assert.equal(await ok(daemon, ["run", "--rm", `${host}/tls/busybox:1`, "echo", "s"]), "s\n");
      // The registry saw TLS: a plain HTTP request would have been refused with a 400 and
      // would not have reached the access log. (The relay's requests are in absolute form.)
      const log = await registry.log();
      assert.match(log, /"PUT \S*\/v2\/tls\/busybox\/manifests\/1 HTTP/);
      assert.match(log, /"GET \S*\/v2\/tls\/busybox\/manifests\/1 HTTP/);
      assert.doesNotMatch(log, /TLS handshake error/);
    });

    await t.step("the same server under a name that is not listed is refused", async () => {
      // `localhost:PORT` reaches the same registry on 127.0.0.1, but only `127.0.0.1:PORT` is
      // listed: its certificate is verified, and fails.
      const port = host.split(":")[1];
      const name = `localhost:${port}/tls/busybox:1`;
      await fails(
        daemon,
        ["pull", name],
        new RegExp(
          `https://localhost:${port}/v2/tls/busybox/manifests/1: certificate not trusted ` +
            `\\(CaUsedAsEndEntity\\); add localhost:${port} to the daemon's insecure-registries`,
        ),
      );
      assert.equal(await hasImage(daemon, name), false);
    });
  });
});

Deno.test("the pull proxy carries pulls, never pushes", async (t) => {
  const tarball = await busyboxTarball();
  await using registry = await startRegistry();
  await using proxy = startForwardProxy();
  await using daemon = await startDaemon({ config: { "image-proxy": proxy.url } });
  const host = registry.host;
  const name = `${host}/p/busybox:1`;
  // Pushed by skopeo, not loaded into the daemon: every blob of the pull is really fetched.
  await skopeoPush(`docker-archive:${tarball}`, name);
  await withLogs(daemon, async () => {
    await t.step("a pull fetches the manifest and every blob through the proxy", async () => {
      await ok(daemon, ["pull", name]);
      const { manifest } = await manifestOf(registry, "p/busybox", "1");
      const gets = proxy.requests.filter((r) => r.startsWith("GET "));
      assert.ok(gets.includes("GET /v2/p/busybox/manifests/1"), proxy.requests.join("\n"));
      for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
        assert.ok(gets.includes(`GET /v2/p/busybox/blobs/${digest}`), proxy.requests.join("\n"));
      }
      // Nothing but GETs (and the refused HTTPS tunnel of the first attempt) went through it.
      assert.deepEqual(
        proxy.requests.filter((r) => !r.startsWith("GET ") && !r.startsWith("CONNECT ")),
        [],
      );
      assert.equal(await ok(daemon, ["run", "--rm", name, "echo", "p"]), "p\n");
    });

    await t.step("a push goes to the registry directly", async () => {
      const before = proxy.requests.length;
      await ok(daemon, ["tag", name, `${host}/p/copy:1`]);
      await ok(daemon, ["push", `${host}/p/copy:1`]);
      assert.deepEqual(proxy.requests.slice(before), []);
      assert.match(await registry.log(), /PUT \/v2\/p\/copy\/manifests\/1/);
    });
  });
});
