/**
 * Who may talk to the daemon: TCP with TLS and client certificates (dockerd's `--tlsverify`),
 * for pouch's CLI and the Docker CLI, attach and exec streams included; clients without a
 * certificate or with one of another CA refused; plain TCP refused unless forced; the unix
 * socket closed to users outside its group. Loopback only; certificates made with openssl.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type CommandResult,
  pouchOk,
  startDaemon,
  withBusyboxDaemon,
} from "../testdata/harness.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const decoder = new TextDecoder();

/** The files of a test PKI. */
interface Pki {
  dir: string;
  /** The CA the daemon trusts; `ca.pem`, `cert.pem`, `key.pem` are a client's DOCKER_CERT_PATH. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by another CA. */
  rogueCert: string;
  rogueKey: string;
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`openssl ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
}

/** A P-256 key and a certificate signing request for `subject`. */
async function keyAndRequest(prefix: string, subject: string): Promise<void> {
  await openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${prefix}-key.pem`,
    "-out",
    `${prefix}.csr`,
    "-subj",
    subject,
  ]);
}

/** A CA certificate and key at `prefix.pem`, `prefix-key.pem`. */
async function makeCa(prefix: string, subject: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${prefix}-key.pem`,
    "-out",
    `${prefix}.pem`,
    "-days",
    "2",
    "-subj",
    subject,
  ]);
}

/** Signs `prefix.csr` with the CA at `ca` into `prefix.pem`, with `extensions`. */
async function sign(prefix: string, ca: string, extensions: string): Promise<void> {
  await Deno.writeTextFile(`${prefix}.ext`, extensions);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${prefix}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}-key.pem`,
    "-CAcreateserial",
    "-out",
    `${prefix}.pem`,
    "-days",
    "2",
    "-extfile",
    `${prefix}.ext`,
  ]);
}

/**
 * Docker's recipe: a CA, a server certificate for 127.0.0.1 and a client certificate it signs,
 * and a client certificate of a second, untrusted CA. Leaf certificates say `CA:FALSE`: rustls
 * refuses a CA certificate used as an end entity.
 */
async function makePki(dir: string): Promise<Pki> {
  await makeCa(`${dir}/ca`, "/CN=pouch-test-ca");
  await keyAndRequest(`${dir}/server`, "/CN=127.0.0.1");
  await sign(
    `${dir}/server`,
    `${dir}/ca`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" +
      "basicConstraints=CA:FALSE\n",
  );
  const client = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
  await keyAndRequest(`${dir}/cert`, "/CN=pouch-test-client");
  await sign(`${dir}/cert`, `${dir}/ca`, client);
  await makeCa(`${dir}/rogue-ca`, "/CN=pouch-test-rogue-ca");
  await keyAndRequest(`${dir}/rogue`, "/CN=pouch-test-rogue");
  await sign(`${dir}/rogue`, `${dir}/rogue-ca`, client);
  // The Docker CLI's DOCKER_CERT_PATH names: ca.pem, cert.pem, key.pem.
  await Deno.rename(`${dir}/cert-key.pem`, `${dir}/key.pem`);
  return {
    dir,
    ca: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server-key.pem`,
    clientCert: `${dir}/cert.pem`,
    clientKey: `${dir}/key.pem`,
    rogueCert: `${dir}/rogue.pem`,
    rogueKey: `${dir}/rogue-key.pem`,
  };
}

/** A TCP port free on loopback right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CommandResult> {
  const out = await new Deno.Command(command, {
    args,
    env: options.env ?? {},
    clearEnv: true,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** `pouch ARGS` with its own environment (no `-H` added). */
function pouch(args: string[], env: Record<string, string> = {}): Promise<CommandResult> {
  return run(Deno.execPath(), ["run", "-A", `${root}main.ts`, ...args], {
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/root", ...env },
  });
}

function ok(result: CommandResult, what: string): string {
  assert.equal(result.code, 0, `${what}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

Deno.test("TCP with TLS: certificates required, CLI and Docker CLI attach and exec", async () => {
  await using tmp = await tempDir("pouch-tls-");
  const pki = await makePki(tmp.path);
  const port = freePort();
  const host = `tcp://127.0.0.1:${port}`;
  const flags = (cert: string, key: string) => [
    "-H",
    host,
    "--tlsverify",
    "--tlscacert",
    pki.ca,
    "--tlscert",
    cert,
    "--tlskey",
    key,
  ];
  await withBusyboxDaemon(async (daemon) => {
    assert.match(
      await daemon.log(),
      /API listening address=tcp:\/\/127\.0\.0\.1:\d+ tls=1 verify=1/,
    );
    const tls = flags(pki.clientCert, pki.clientKey);

    const ps = ok(await pouch([...tls, "ps", "-a"]), "pouch ps over TLS");
    assert.match(ps, /^Name\s+ID\s+Status/);
    // Attach over TLS: the output comes back on the hijacked connection.
    const hi = ok(await pouch([...tls, "run", "--rm", "busybox", "echo", "hi"]), "pouch run");
    assert.equal(hi, "hi\n");
    ok(
      await pouch([...tls, "run", "-d", "--name", "tls-exec", "busybox", "sleep", "300"]),
      "pouch run -d",
    );
    const exec = ok(await pouch([...tls, "exec", "tls-exec", "cat", "/etc/hostname"]), "exec");
    assert.notEqual(exec.trim(), "");
    // Stdin goes up the TLS connection too, and its end (a TLS half-close) ends `cat`.
    const piped = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}main.ts`, ...tls, "exec", "-i", "tls-exec", "cat"],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = piped.stdin.getWriter();
    await writer.write(new TextEncoder().encode("through tls\n"));
    await writer.close();
    const echoed = await piped.output();
    assert.equal(decoder.decode(echoed.stdout), "through tls\n", decoder.decode(echoed.stderr));

    // The Docker CLI, configured from its environment.
    const dockerEnv = {
      DOCKER_HOST: host,
      DOCKER_TLS_VERIFY: "1",
      DOCKER_CERT_PATH: pki.dir,
      DOCKER_CONFIG: `${tmp.path}/docker-config`,
    };
    const docker = (args: string[]) => run("/usr/local/bin/docker", args, { env: dockerEnv });
    assert.match(ok(await docker(["ps", "-a"]), "docker ps"), /tls-exec/);
    assert.equal(ok(await docker(["run", "--rm", "busybox", "echo", "hi"]), "docker run"), "hi\n");
    assert.equal(
      ok(await docker(["exec", "tls-exec", "echo", "exec ok"]), "docker exec"),
      "exec ok\n",
    );
    // pouch reads the same environment.
    assert.match(ok(await pouch(["ps"], dockerEnv), "pouch ps from DOCKER_*"), /tls-exec/);

    // Refused: no client certificate, one of another CA, and no TLS at all.
    const bare = await pouch(["-H", host, "--tlsverify", "--tlscacert", pki.ca, "ps"]);
    assert.notEqual(bare.code, 0);
    assert.match(
      bare.stderr,
      /Cannot connect to the pouch daemon at tcp:.*TLS handshake failed.*requires a client certificate/,
    );
    const rogue = await pouch([...flags(pki.rogueCert, pki.rogueKey), "ps"]);
    assert.notEqual(rogue.code, 0);
    assert.match(rogue.stderr, /TLS handshake failed.*refused the client certificate/);
    const plain = await pouch(["-H", host, "ps"]);
    assert.notEqual(plain.code, 0);
    const dockerRogue = await run("/usr/local/bin/docker", [
      "-H",
      host,
      "--tlsverify",
      "--tlscacert",
      pki.ca,
      "--tlscert",
      pki.rogueCert,
      "--tlskey",
      pki.rogueKey,
      "ps",
    ], { env: { DOCKER_CONFIG: `${tmp.path}/docker-config` } });
    assert.notEqual(dockerRogue.code, 0);
    // With TLS 1.3 the server's alert may reach Go's client as a bare EOF on its first read;
    // that the handshake was what refused it shows in the daemon's log (checked below).
    assert.match(dockerRogue.stderr, /tls|certificate|EOF/i);
    // A client that does not trust the daemon's CA stops on its side.
    const distrust = await pouch([
      "-H",
      host,
      "--tlsverify",
      "--tlscacert",
      `${pki.dir}/rogue-ca.pem`,
      "ps",
    ]);
    assert.notEqual(distrust.code, 0);
    assert.match(distrust.stderr, /TLS handshake failed.*(UnknownIssuer|certificate)/);
    assert.match(await daemon.log(), /TLS handshake refused/);
    // Nothing of it reached the API: the one container is still the only one.
    assert.match(await pouchOk(daemon, ["ps", "-a", "-q"]), /^[0-9a-f]{12}\n$/);
  }, {
    args: [
      "-l",
      host,
      "--tlsverify",
      "--tlscacert",
      pki.ca,
      "--tlscert",
      pki.serverCert,
      "--tlskey",
      pki.serverKey,
    ],
  });
});

Deno.test("the daemon refuses TCP without TLS unless --insecure-tcp, which it warns about", async () => {
  await using tmp = await tempDir("pouch-tcp-");
  const port = freePort();
  const host = `tcp://127.0.0.1:${port}`;
  await Deno.writeTextFile(`${tmp.path}/config.json`, "{}");
  const refused = await run(Deno.execPath(), [
    "run",
    "-A",
    `${root}main.ts`,
    "daemon",
    "--home-dir",
    `${tmp.path}/home`,
    "--pidfile",
    `${tmp.path}/pouch.pid`,
    "--config-file",
    `${tmp.path}/config.json`,
    "-l",
    host,
  ]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /refusing to listen on tcp:\/\/127\.0\.0\.1:\d+ without TLS/);
  // It stopped before making anything.
  await assert.rejects(Deno.stat(`${tmp.path}/home`), Deno.errors.NotFound);

  await using daemon = await startDaemon({ args: ["-l", host, "--insecure-tcp"] });
  assert.match(await daemon.log(), /WARN !!! API LISTENING ON TCP WITHOUT TLS/);
  const version = ok(await pouch(["-H", host, "version", "--format", "{{.Server.Version}}"]), "v");
  assert.notEqual(version.trim(), "");
});

Deno.test("a user outside the socket's group cannot use the unix socket", async () => {
  await using daemon = await startDaemon();
  const info = await Deno.stat(daemon.socket);
  assert.equal(info.mode! & 0o777, 0o660);
  // Let nobody reach the socket's directory, so that the socket's own mode is what decides.
  await Deno.chmod(daemon.dir, 0o711);
  await using deno = await tempDir("pouch-nobody-");
  await Deno.chmod(deno.path, 0o777);
  const asNobody = (args: string[]) =>
    run("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      Deno.execPath(),
      "run",
      "-A",
      "--cached-only",
      `${root}main.ts`,
      "-H",
      `unix://${daemon.socket}`,
      ...args,
    ], { env: { HOME: deno.path, DENO_DIR: `${deno.path}/deno`, PATH: "/usr/bin:/bin" } });
  const denied = await asNobody(["ps"]);
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stderr, /Cannot connect to the pouch daemon at unix:.*permission denied/);
  // The same user gets through once the mode lets it: the refusal was the socket's mode.
  await Deno.chmod(daemon.socket, 0o666);
  try {
    assert.match(
      ok(await asNobody(["ps"]), "ps as nobody on a 0666 socket"),
      /^Name\s+ID\s+Status/,
    );
  } finally {
    await Deno.chmod(daemon.socket, 0o660);
  }
  // Docker's CLI as nobody is refused too.
  const docker = await run("setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "/usr/local/bin/docker",
    "ps",
  ], { env: { DOCKER_HOST: `unix://${daemon.socket}`, DOCKER_CONFIG: `${deno.path}/docker` } });
  assert.notEqual(docker.code, 0);
  assert.match(docker.stderr, /permission denied/);
});

/** A temp directory removed when the test is done. */
async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ dir: "/tmp", prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}
