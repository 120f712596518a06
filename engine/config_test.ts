import assert from "node:assert/strict";
import { defaultConfig, loadConfig, parseApiAddress } from "./config.ts";
import { isInvalidArgument } from "./errors.ts";

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/config.json`, text);
    await fn(`${dir}/config.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadConfig() reads the file and lets flags win", async () => {
  await withFile(
    JSON.stringify({ "home-dir": "/srv/pouch", debug: true, listen: ["unix:///a.sock"] }),
    async (path) => {
      const config = await loadConfig(["--config-file", path, "-l", "unix:///b.sock"]);
      assert.ok(config !== "help");
      assert.equal(config.homeDir, "/srv/pouch");
      assert.equal(config.debug, true);
      assert.deepEqual(config.listen, ["unix:///b.sock"]);
    },
  );
});

Deno.test("loadConfig() accepts PouchContainer's runtimes and --add-runtime", async () => {
  await withFile(JSON.stringify({ runtimes: { kata: { path: "/bin/kata" } } }), async (path) => {
    const config = await loadConfig(["--config-file", path, "--add-runtime", "crun=/bin/crun"]);
    assert.ok(config !== "help");
    assert.deepEqual(config.runtimes, { runc: "runc", kata: "/bin/kata", crun: "/bin/crun" });
  });
});

Deno.test("loadConfig() refuses bad files, unknown keys, flags and addresses", async () => {
  await withFile("{nope", async (path) => {
    await assert.rejects(loadConfig(["--config-file", path]), isInvalidArgument);
  });
  await withFile(JSON.stringify({ bogus: 1 }), async (path) => {
    await assert.rejects(loadConfig(["--config-file", path]), isInvalidArgument);
  });
  await assert.rejects(loadConfig(["--bogus"]), isInvalidArgument);
  await assert.rejects(
    loadConfig(["--config-file", "/nonexistent/config.json"]),
    isInvalidArgument,
  );
  await assert.rejects(
    loadConfig(["--config-file", "/dev/null/x", "-l", "tcp://0.0.0.0:1"]),
    isInvalidArgument,
  );
});

Deno.test("loadConfig() reads daemon-wide OCI hooks and --rich-init", async () => {
  const hooks = {
    prestart: [{ path: "/usr/bin/log", args: ["log", "start"], timeout: 5 }],
    poststop: [{ path: "/usr/bin/log" }],
  };
  await withFile(JSON.stringify({ hooks }), async (path) => {
    const config = await loadConfig(["--config-file", path, "--rich-init", "/opt/tini"]);
    assert.ok(config !== "help");
    assert.deepEqual(config.hooks, {
      prestart: [{ path: "/usr/bin/log", args: ["log", "start"], timeout: 5 }],
      poststop: [{ path: "/usr/bin/log", args: ["/usr/bin/log"] }],
    });
    assert.equal(config.richInit, "/opt/tini");
  });
  for (
    const bad of [
      { hooks: [] },
      { hooks: { poststart: [] } },
      { hooks: { prestart: [{ path: "log" }] } },
      { hooks: { prestart: [{ path: "/bin/log", args: "x" }] } },
    ]
  ) {
    await withFile(JSON.stringify(bad), async (path) => {
      await assert.rejects(loadConfig(["--config-file", path]), isInvalidArgument);
    });
  }
});

Deno.test("loadConfig() reads --volume-plugin-dir and --volume-plugin-timeout", async () => {
  await withFile("{}", async (path) => {
    const defaults = await loadConfig(["--config-file", path]);
    assert.ok(defaults !== "help");
    assert.deepEqual(defaults.volumePluginDirs, [
      "/run/docker/plugins",
      "/run/pouch/plugins",
      "/etc/docker/plugins",
      "/usr/lib/docker/plugins",
      "/etc/pouch/plugins",
    ]);
    assert.equal(defaults.volumePluginTimeoutMs, 30_000);
    for (const bad of [["--volume-plugin-dir", "rel"], ["--volume-plugin-timeout", "soon"]]) {
      await assert.rejects(loadConfig(["--config-file", path, ...bad]), isInvalidArgument);
    }
  });
  await withFile(
    JSON.stringify({ "volume-plugin-dir": ["/srv/plugins"], "volume-plugin-timeout": 5 }),
    async (path) => {
      const fromFile = await loadConfig(["--config-file", path]);
      assert.ok(fromFile !== "help");
      assert.deepEqual(fromFile.volumePluginDirs, ["/srv/plugins"]);
      assert.equal(fromFile.volumePluginTimeoutMs, 5000);
      const flags = await loadConfig([
        "--config-file",
        path,
        "--volume-plugin-dir",
        "/a",
        "--volume-plugin-dir",
        "/b",
        "--volume-plugin-timeout",
        "500ms",
      ]);
      assert.ok(flags !== "help");
      assert.deepEqual(flags.volumePluginDirs, ["/a", "/b"]);
      assert.equal(flags.volumePluginTimeoutMs, 500);
    },
  );
});

Deno.test("loadConfig() reads the network flags, Docker's --iptables=false included", async () => {
  await withFile(
    JSON.stringify({ "bridge-name": "br9", mtu: 1400, ipforward: false }),
    async (path) => {
      const config = await loadConfig([
        "--config-file",
        path,
        "--bip",
        "10.9.0.1/16",
        "--fixed-cidr",
        "10.9.1.0/24",
        "--iptables=false",
        "--cni-bin-dir",
        "/a,/b",
      ]);
      assert.ok(config !== "help");
      assert.equal(config.bridgeName, "br9");
      assert.equal(config.bip, "10.9.0.1/16");
      assert.equal(config.fixedCidr, "10.9.1.0/24");
      assert.equal(config.mtu, 1400);
      assert.equal(config.iptables, false);
      assert.equal(config.ipForward, false);
      assert.deepEqual(config.cniBinDirs, ["/a", "/b"]);
      const flagWins = await loadConfig(["--config-file", path, "--ipforward=true"]);
      assert.ok(flagWins !== "help");
      assert.equal(flagWins.ipForward, true);
      await assert.rejects(
        loadConfig(["--config-file", path, "--iptables=maybe"]),
        isInvalidArgument,
      );
      await assert.rejects(loadConfig(["--config-file", path, "--mtu", "9"]), isInvalidArgument);
    },
  );
});

Deno.test("loadConfig() reads the CRI flags and their config keys", async () => {
  await withFile(
    JSON.stringify({ "enable-cri": true, "stream-server-port": 10011 }),
    async (path) => {
      const config = await loadConfig([
        "--config-file",
        path,
        "--listen-cri",
        "unix:///run/cri.sock",
        "--sandbox-image",
        "pause:latest",
        "--cni-conf-dir",
        "/srv/cni",
      ]);
      assert.ok(config !== "help");
      assert.equal(config.enableCri, true);
      assert.equal(config.listenCri, "unix:///run/cri.sock");
      assert.equal(config.sandboxImage, "pause:latest");
      assert.equal(config.streamServerPort, 10011);
      assert.equal(config.cniConfDir, "/srv/cni");
    },
  );
  await withFile("{}", async (path) => {
    const config = await loadConfig(["--config-file", path]);
    assert.ok(config !== "help");
    assert.equal(config.enableCri, false);
    assert.equal(config.listenCri, "unix:///var/run/pouchcri.sock");
    assert.equal(config.streamServerPort, 10010);
    await assert.rejects(
      loadConfig(["--config-file", path, "--stream-server-port", "70000"]),
      isInvalidArgument,
    );
    await assert.rejects(
      loadConfig(["--config-file", path, "--listen-cri", "tcp://0.0.0.0:1"]),
      isInvalidArgument,
    );
  });
});

Deno.test("loadConfig() reads --log-level and --group, from flags or the file", async () => {
  await withFile(JSON.stringify({ "log-level": "warn", group: "docker" }), async (path) => {
    const fromFile = await loadConfig(["--config-file", path]);
    assert.ok(fromFile !== "help");
    assert.equal(fromFile.logLevel, "warn");
    assert.equal(fromFile.group, "docker");
    const fromFlags = await loadConfig([
      "--config-file",
      path,
      "--log-level",
      "error",
      "--group",
      "ops",
    ]);
    assert.ok(fromFlags !== "help");
    assert.equal(fromFlags.logLevel, "error");
    assert.equal(fromFlags.group, "ops");
    await assert.rejects(
      loadConfig(["--config-file", path, "--log-level", "loud"]),
      (err) => isInvalidArgument(err),
    );
  });
  assert.equal(defaultConfig().group, "pouch");
  assert.equal(defaultConfig().logLevel, "info");
});

Deno.test("loadConfig() takes the default log driver, its options and the plugins", async () => {
  await withFile(
    JSON.stringify({
      "log-driver": "json-file",
      "log-opts": { "max-size": "10m" },
      "plugin-dir": "/srv/plugins",
      plugins: ["/opt/site.ts"],
    }),
    async (path) => {
      const config = await loadConfig(["--config-file", path, "--plugin", "/opt/exe"]);
      assert.ok(config !== "help");
      assert.equal(config.logDriver, "json-file");
      assert.deepEqual(config.logOpts, { "max-size": "10m" });
      assert.equal(config.pluginDir, "/srv/plugins");
      assert.deepEqual(config.plugins, ["/opt/site.ts", "/opt/exe"]);
      const flags = await loadConfig([
        "--config-file",
        path,
        "--log-driver",
        "syslog",
        "--log-opt",
        "syslog-address=udp://127.0.0.1:514",
      ]);
      assert.ok(flags !== "help");
      assert.deepEqual(flags.logOpts, { "syslog-address": "udp://127.0.0.1:514" });
    },
  );
  assert.equal(defaultConfig().pluginDir, "/etc/pouch/plugins");
  await assert.rejects(loadConfig(["--log-driver", "fluentd"]), isInvalidArgument);
  await assert.rejects(loadConfig(["--log-opt", "max-files=2"]), isInvalidArgument);
  await assert.rejects(loadConfig(["--log-opt", "nokey"]), isInvalidArgument);
});

Deno.test("loadConfig() reads the TLS flags and keys; --tlsverify and a certificate imply TLS", async () => {
  await withFile(
    JSON.stringify({ tlscert: "/f/cert.pem", tlskey: "/f/key.pem", tlscacert: "/f/ca.pem" }),
    async (path) => {
      const config = await loadConfig(["--config-file", path, "-l", "tcp://127.0.0.1"]);
      assert.ok(config !== "help");
      assert.deepEqual(
        [config.tls, config.tlsVerify, config.tlsCert, config.tlsKey, config.tlsCaCert],
        [true, false, "/f/cert.pem", "/f/key.pem", "/f/ca.pem"],
      );
      const verify = await loadConfig([
        "--config-file",
        path,
        "--tlsverify",
        "--tlscert",
        "/g/cert.pem",
        "-l",
        "tcp://127.0.0.1:2376",
        "-l",
        "unix:///run/p.sock",
      ]);
      assert.ok(verify !== "help");
      assert.deepEqual([verify.tls, verify.tlsVerify, verify.tlsCert], [true, true, "/g/cert.pem"]);
    },
  );
  await withFile(
    JSON.stringify({ tls: true, tlsverify: true, tlscert: "/c", tlskey: "/k", tlscacert: "/a" }),
    async (path) => {
      const config = await loadConfig(["--config-file", path, "--tlsverify=false"]);
      assert.ok(config !== "help");
      assert.deepEqual([config.tls, config.tlsVerify], [true, false]);
    },
  );
});

Deno.test("loadConfig() refuses TCP without TLS unless --insecure-tcp, and half-set TLS", async () => {
  await withFile("{}", async (path) => {
    await assert.rejects(
      loadConfig(["--config-file", path, "-l", "tcp://127.0.0.1:2375"]),
      /refusing to listen on tcp:\/\/127\.0\.0\.1:2375 without TLS/,
    );
    const forced = await loadConfig(["--config-file", path, "-l", "tcp://:2375", "--insecure-tcp"]);
    assert.ok(forced !== "help");
    assert.equal(forced.insecureTcp, true);
    await assert.rejects(
      loadConfig(["--config-file", path, "--tls", "--tlscert", "/c"]),
      /give --tlscert and --tlskey/,
    );
    await assert.rejects(
      loadConfig(["--config-file", path, "--tlsverify", "--tlscert", "/c", "--tlskey", "/k"]),
      /--tlsverify needs the CA/,
    );
    await assert.rejects(
      loadConfig(["--config-file", path, "--insecure-tcp", "-l", "tcp://h:99999"]),
      /want a port of 1-65535/,
    );
  });
});

Deno.test("parseApiAddress() reads unix and tcp addresses with dockerd's defaults", () => {
  assert.deepEqual(parseApiAddress("unix:///run/p.sock", { tls: true }), {
    kind: "unix",
    path: "/run/p.sock",
  });
  assert.deepEqual(parseApiAddress("tcp://0.0.0.0", { tls: true }), {
    kind: "tcp",
    host: "0.0.0.0",
    port: 2376,
  });
  assert.deepEqual(parseApiAddress("tcp://:9000", { tls: false }), {
    kind: "tcp",
    host: "localhost",
    port: 9000,
  });
  assert.deepEqual(parseApiAddress("tcp://[::1]", { tls: false }), {
    kind: "tcp",
    host: "::1",
    port: 2375,
  });
  assert.throws(() => parseApiAddress("tcp://a/b", { tls: true }), isInvalidArgument);
  assert.throws(() => parseApiAddress("http://a", { tls: true }), isInvalidArgument);
});

Deno.test("loadConfig() parses flags with pflag's rules, as dockerd does", async () => {
  await withFile("{}", async (path) => {
    const config = await loadConfig([
      "--config-file=" + path,
      "-Dl",
      "unix:///a.sock",
      "--listen=unix:///b.sock",
      "--iptables=false",
      "--cni-bin-dir",
      "/opt/a,/opt/b",
    ]);
    assert.ok(config !== "help");
    assert.equal(config.debug, true);
    assert.deepEqual(config.listen, ["unix:///a.sock", "unix:///b.sock"]);
    assert.equal(config.iptables, false);
    assert.deepEqual(config.cniBinDirs, ["/opt/a", "/opt/b"]);
    assert.equal(await loadConfig(["-h"]), "help");
    for (
      const [args, message] of [
        [["--bogus"], /unknown flag: --bogus/],
        [["--home-dir"], /flag needs an argument: --home-dir/],
        [["--config-file", path, "stray"], /unexpected argument "stray"/],
        [["--debug=maybe"], /invalid argument "maybe"/],
      ] as const
    ) {
      await assert.rejects(
        loadConfig([...args]),
        (err: Error) => isInvalidArgument(err) && message.test(err.message),
      );
    }
  });
});
