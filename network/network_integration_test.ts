/**
 * Networking end to end with the real CNI plugins: user networks with name resolution, static
 * addresses kept over restarts of the container and the daemon, published ports answering on
 * 127.0.0.1, the none, host and container modes, bad input, the Docker CLI, and a host that
 * lost its namespaces (a reboot). Traffic goes only to loopback and to addresses inside the
 * namespaces the test creates. Each daemon gets its own bridge names and 10.x subnets, and the
 * test checks at the end that no veth, namespace, iptables rule or address is left.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";
import { waitFor } from "../engine/testing.ts";
import { bridgeConfList } from "./bridge.ts";
import { CniRunner } from "./cni.ts";
import { createNetns, removeNetns } from "./netns.ts";

const decoder = new TextDecoder();

/** A random 10.x.y.0/24 block per test run, clear of the host's 10.255.255.0 resolver. */
const octet2 = 100 + Math.floor(Math.random() * 140);
const octet3 = Math.floor(Math.random() * 200);
const tag = crypto.randomUUID().slice(0, 6);
const bridgeName = `pt${tag}`;
const defaultNet = `10.${octet2}.${octet3}`;
const userNet = `10.${octet2}.${octet3 + 1}`;
const dockerNet = `10.${octet2}.${octet3 + 2}`;

async function sh(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  return decoder.decode(out.stdout) + decoder.decode(out.stderr);
}

async function inspect(daemon: TestDaemon, name: string) {
  return JSON.parse(await ok(daemon, ["inspect", name]))[0] as {
    Id: string;
    NetworkSettings: {
      IPAddress: string;
      Gateway: string;
      IPPrefixLen: number;
      MacAddress: string;
      SandboxKey: string;
      Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null>;
      Networks: Record<string, { IPAddress: string; Gateway: string; MacAddress: string }>;
    };
  };
}

async function api(daemon: TestDaemon, method: string, path: string, body?: unknown) {
  const response = await daemon.api(method, path, body);
  return { status: response.status, json: response.body ? JSON.parse(response.body) : undefined };
}

/** A free port on 127.0.0.1 now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** GETs http://127.0.0.1:PORT/ until it answers (the server may still be starting). */
async function fetchLoopback(port: number): Promise<string> {
  let body = "";
  await waitFor(async () => {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`, {
        signal: AbortSignal.timeout(2000),
      });
      body = await response.text();
      return response.ok;
    } catch {
      return false;
    }
  }, { timeoutMs: 15_000, message: `127.0.0.1:${port} did not answer` });
  return body;
}

/** A busybox httpd serving `text` on port 8080. */
function httpd(text: string): string[] {
  return [
    "sh",
    "-c",
    `mkdir -p /www && echo ${text} > /www/index.html && httpd -f -p 8080 -h /www`,
  ];
}

/**
 * Flags that let the static busybox resolve names from /etc/hosts: its glibc loads
 * `libnss_files` at run time, which the scratch image lacks, so the host's libraries are
 * mounted read-only; `nsswitch.conf` says `hosts: files` so no query leaves the namespace.
 */
async function resolverFlags(daemon: TestDaemon): Promise<string[]> {
  const nsswitch = `${daemon.dir}/nsswitch.conf`;
  await Deno.writeTextFile(nsswitch, "hosts: files\n");
  return [
    "-v",
    "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro",
    "-v",
    "/lib64:/lib64:ro",
    "-v",
    `${nsswitch}:/etc/nsswitch.conf:ro`,
  ];
}

/**
 * An HTTP GET of `host:8080` from a new container on `network`, retried while the server
 * starts; returns the response body. busybox's `nc` (its `wget` crashes in this static build
 * when it resolves names) with the host's resolver libraries.
 */
async function httpFrom(daemon: TestDaemon, network: string, host: string): Promise<string> {
  const request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'";
  const script =
    `for i in $(seq 1 30); do ${request} | nc -w 2 ${host} 8080 && exit 0; sleep 0.3; done; exit 1`;
  const response = await ok(daemon, [
    "run",
    "--rm",
    "--network",
    network,
    ...await resolverFlags(daemon),
    "busybox",
    "sh",
    "-c",
    script,
  ]);
  return response.slice(response.indexOf("\r\n\r\n") + 4);
}

/** Host interfaces attached to the bridge `name`. */
async function bridgePorts(name: string): Promise<string[]> {
  const text = await sh("ip", ["-j", "link", "show", "master", name]);
  try {
    return (JSON.parse(text) as Array<{ ifname: string }>).map((l) => l.ifname);
  } catch {
    return [];
  }
}

/** nsfs mounts under `dir`. */
async function netnsMounts(dir: string): Promise<string[]> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  return mountinfo.split("\n").filter((l) => l.includes(" nsfs ") && l.includes(dir));
}

/** The addresses host-local holds under the daemon's home. */
async function ipamEntries(home: string): Promise<string[]> {
  const entries: string[] = [];
  try {
    for await (const net of Deno.readDir(`${home}/network/ipam`)) {
      for await (const file of Deno.readDir(`${home}/network/ipam/${net.name}`)) {
        if (/^\d+\.\d+\.\d+\.\d+$/.test(file.name)) entries.push(`${net.name}/${file.name}`);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return entries;
}

Deno.test("networking: user networks, ports, modes, stable addresses and cleanup", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    const networkIds: string[] = [];
    const containerIds: string[] = [];

    await t.step("the predefined networks exist, bridge with the daemon's flags", async () => {
      const list = await api(daemon, "GET", "/networks");
      assert.equal(list.status, 200);
      const names = (list.json as Array<{ Name: string }>).map((n) => n.Name).sort();
      assert.deepEqual(names, ["bridge", "host", "none"]);
      const bridge = await api(daemon, "GET", "/networks/bridge");
      assert.equal(bridge.json.IPAM.Config[0].Subnet, `${defaultNet}.0/24`);
      assert.equal(bridge.json.IPAM.Config[0].Gateway, `${defaultNet}.1`);
      assert.equal(bridge.json.Options["com.docker.network.bridge.name"], bridgeName);
      networkIds.push(bridge.json.Id);
      const removed = await api(daemon, "DELETE", "/networks/bridge");
      assert.equal(removed.status, 403);
      assert.match(removed.json.message, /bridge is a pre-defined network and cannot be removed/);
    });

    await t.step("network create: a user network, and bad requests answered clearly", async () => {
      const created = await api(daemon, "POST", "/networks/create", {
        Name: "nt-user",
        IPAM: { Config: [{ Subnet: `${userNet}.0/24` }] },
        Labels: { "test.tag": tag },
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      networkIds.push(created.json.Id);
      const cases: Array<[unknown, number, RegExp]> = [
        [{ Name: "nt-user" }, 409, /already exists/],
        [
          { Name: "nt-overlap", IPAM: { Config: [{ Subnet: `${userNet}.128/25` }] } },
          409,
          /overlaps/,
        ],
        [
          { Name: "nt-bad", IPAM: { Config: [{ Subnet: "10.1.2.300/24" }] } },
          400,
          /invalid subnet/,
        ],
        [{ Name: "nt-driver", Driver: "overlay" }, 400, /not supported/],
        [
          {
            Name: "nt-gw",
            IPAM: { Config: [{ Subnet: `${dockerNet}.0/24`, Gateway: "10.0.0.1" }] },
          },
          400,
          /invalid gateway/,
        ],
      ];
      for (const [body, status, message] of cases) {
        const answer = await api(daemon, "POST", "/networks/create", body);
        assert.equal(answer.status, status, JSON.stringify(body));
        assert.match(answer.json.message, message);
      }
      const list = await api(daemon, "GET", "/networks");
      assert.equal((list.json as unknown[]).length, 4);
      const unknown = await api(daemon, "GET", "/networks/nt-nope");
      assert.equal(unknown.status, 404);
      assert.match(unknown.json.message, /network nt-nope not found/);
    });

    await t.step("two containers on a user network reach each other by name and IP", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "nt-web",
        "--network",
        "nt-user",
        "busybox",
        ...httpd("hello-web"),
      ]);
      const web = await inspect(daemon, "nt-web");
      containerIds.push(web.Id);
      const ip = web.NetworkSettings.Networks["nt-user"]!.IPAddress;
      assert.match(ip, new RegExp(`^${userNet.replaceAll(".", "\\.")}\\.\\d+$`));
      assert.equal(web.NetworkSettings.Networks["nt-user"]!.Gateway, `${userNet}.1`);
      assert.match(
        web.NetworkSettings.Networks["nt-user"]!.MacAddress,
        /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/,
      );
      assert.equal(web.NetworkSettings.SandboxKey, `${daemon.home}/netns/${web.Id}`);
      assert.equal((await httpFrom(daemon, "nt-user", "nt-web")).trim(), "hello-web");
      assert.equal((await httpFrom(daemon, "nt-user", ip)).trim(), "hello-web");
      const network = await api(daemon, "GET", "/networks/nt-user");
      assert.equal(network.json.Containers[web.Id].Name, "nt-web");
      assert.equal(network.json.Containers[web.Id].IPv4Address, `${ip}/24`);
      // The host reaches the container's address through the bridge.
      const direct = await fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(5000) });
      assert.equal(await direct.text(), "hello-web\n");
    });

    await t.step("--ip: a static address; taken, outside, unknown network refused", async () => {
      await ok(daemon, [
        "create",
        "--name",
        "nt-static",
        "--network",
        "nt-user",
        "--ip",
        `${userNet}.50`,
        ...await resolverFlags(daemon),
        "busybox",
        "sleep",
        "1000",
      ]);
      const created = await inspect(daemon, "nt-static");
      containerIds.push(created.Id);
      assert.equal(created.NetworkSettings.Networks["nt-user"]!.IPAddress, `${userNet}.50`);
      const taken = await daemon.pouch([
        "create",
        "--name",
        "nt-taken",
        "--network",
        "nt-user",
        "--ip",
        `${userNet}.50`,
        "busybox",
        "true",
      ]);
      assert.notEqual(taken.code, 0);
      assert.match(taken.stderr, /Address already in use/);
      const outside = await daemon.pouch([
        "create",
        "--name",
        "nt-outside",
        "--network",
        "nt-user",
        "--ip",
        "10.9.9.9",
        "busybox",
        "true",
      ]);
      assert.notEqual(outside.code, 0);
      assert.match(outside.stderr, /not a free host address/);
      const unknown = await daemon.pouch([
        "create",
        "--name",
        "nt-unknown",
        "--network",
        "nt-nope",
        "busybox",
        "true",
      ]);
      assert.notEqual(unknown.code, 0);
      assert.match(unknown.stderr, /network nt-nope not found/);
      const names = await ok(daemon, ["ps", "-a", "--format", "{{.Names}}"]);
      assert.doesNotMatch(names, /nt-taken|nt-outside|nt-unknown/);
    });

    await t.step("the address is kept over restart and a daemon restart", async () => {
      await ok(daemon, ["start", "nt-static"]);
      await ok(daemon, ["restart", "-t", "1", "nt-static"]);
      assert.equal(
        (await inspect(daemon, "nt-static")).NetworkSettings.Networks["nt-user"]!.IPAddress,
        `${userNet}.50`,
      );
      const before = await inspect(daemon, "nt-web");
      await daemon.stop();
      await daemon.start();
      const after = await inspect(daemon, "nt-web");
      assert.deepEqual(after.NetworkSettings.Networks, before.NetworkSettings.Networks);
      // The start checked every attachment with the plugins (CNI CHECK).
      const failedChecks = (await daemon.log()).split("\n").filter((l) =>
        l.includes("CHECK failed")
      );
      assert.deepEqual(failedChecks, []);
      assert.equal((await httpFrom(daemon, "nt-user", "nt-web")).trim(), "hello-web");
      await ok(daemon, ["stop", "-t", "1", "nt-static"]);
      await ok(daemon, ["start", "nt-static"]);
      assert.equal(
        (await inspect(daemon, "nt-static")).NetworkSettings.Networks["nt-user"]!.IPAddress,
        `${userNet}.50`,
      );
    });

    await t.step("a published port answers on 127.0.0.1; a port in use is refused", async () => {
      const port = freePort();
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "nt-pub",
        "-p",
        `${port}:8080`,
        "busybox",
        ...httpd("hello-pub"),
      ]);
      const pub = await inspect(daemon, "nt-pub");
      containerIds.push(pub.Id);
      assert.deepEqual(pub.NetworkSettings.Ports["8080/tcp"], [{
        HostIp: "0.0.0.0",
        HostPort: String(port),
      }]);
      assert.match(
        pub.NetworkSettings.IPAddress,
        new RegExp(`^${defaultNet.replaceAll(".", "\\.")}\\.`),
      );
      assert.equal((await fetchLoopback(port)).trim(), "hello-pub");
      const ps = (await api(daemon, "GET", "/containers/json")).json as Array<
        { Names: string[]; Ports: unknown[] }
      >;
      const summary = ps.find((c) => c.Names[0] === "/nt-pub");
      assert.deepEqual(summary?.Ports, [{
        IP: "0.0.0.0",
        PrivatePort: 8080,
        PublicPort: port,
        Type: "tcp",
      }]);
      const ipamBefore = await ipamEntries(daemon.home);
      const clash = await daemon.pouch([
        "run",
        "-d",
        "--name",
        "nt-clash",
        "-p",
        `${port}:80`,
        "busybox",
        "sleep",
        "100",
      ]);
      assert.notEqual(clash.code, 0);
      assert.match(clash.stderr, /port is already allocated/);
      // A port some host process holds is refused the same way.
      const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const held = await daemon.pouch([
          "run",
          "-d",
          "--name",
          "nt-held",
          "-p",
          `127.0.0.1:${holder.addr.port}:80`,
          "busybox",
          "sleep",
          "100",
        ]);
        assert.notEqual(held.code, 0);
        assert.match(held.stderr, /port is already allocated/);
      } finally {
        holder.close();
      }
      assert.deepEqual(await ipamEntries(daemon.home), ipamBefore);
      assert.doesNotMatch(
        await ok(daemon, ["ps", "-a", "--format", "{{.Names}}"]),
        /nt-clash|nt-held/,
      );
      // -P: every exposed port on a random host port.
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "nt-all",
        "-P",
        "--expose",
        "8080",
        "busybox",
        ...httpd("hello-all"),
      ]);
      const all = await inspect(daemon, "nt-all");
      containerIds.push(all.Id);
      const random = all.NetworkSettings.Ports["8080/tcp"]?.[0]?.HostPort;
      assert.ok(random && Number(random) > 0, JSON.stringify(all.NetworkSettings.Ports));
      assert.equal((await fetchLoopback(Number(random))).trim(), "hello-all");
    });

    await t.step("--net none has only lo; --net host sees the host's interfaces", async () => {
      const none = await ok(daemon, [
        "run",
        "--rm",
        "--net",
        "none",
        "busybox",
        "cat",
        "/proc/net/dev",
      ]);
      const names = none.split("\n").slice(2).map((l) => l.split(":")[0]!.trim()).filter((n) => n);
      assert.deepEqual(names, ["lo"]);
      const hostDev = await Deno.readTextFile("/proc/net/dev");
      const hostNames = hostDev.split("\n").slice(2).map((l) => l.split(":")[0]!.trim()).filter((
        n,
      ) => n);
      const inHost = await ok(daemon, [
        "run",
        "--rm",
        "--net",
        "host",
        "busybox",
        "cat",
        "/proc/net/dev",
      ]);
      for (const name of hostNames.filter((n) => !n.startsWith("veth"))) {
        assert.match(inHost, new RegExp(`^\\s*${name}:`, "m"));
      }
    });

    await t.step("container: shares the namespace of a running container", async () => {
      const shared = await ok(daemon, [
        "run",
        "--rm",
        "--net",
        "container:nt-web",
        "busybox",
        "wget",
        "-qO-",
        "http://127.0.0.1:8080/",
      ]);
      assert.equal(shared.trim(), "hello-web");
      await ok(daemon, [
        "create",
        "--name",
        "nt-joiner",
        "--net",
        "container:nt-web",
        "busybox",
        "sleep",
        "100",
      ]);
      containerIds.push((await inspect(daemon, "nt-joiner")).Id);
      await ok(daemon, ["stop", "-t", "1", "nt-web"]);
      const refused = await daemon.pouch(["start", "nt-joiner"]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /non running container/);
      await ok(daemon, ["start", "nt-web"]);
      await ok(daemon, ["rm", "-f", "nt-joiner"]);
    });

    await t.step(
      "--dns, --dns-search, --dns-option, --add-host, --hostname in the files",
      async () => {
        const out = await ok(daemon, [
          "run",
          "--rm",
          "--network",
          "nt-user",
          "--hostname",
          "nt-host",
          "--dns",
          "10.1.1.1",
          "--dns-search",
          "example.test",
          "--dns-option",
          "ndots:2",
          "--add-host",
          "db.test:10.2.2.2",
          "busybox",
          "sh",
          "-c",
          "cat /etc/resolv.conf /etc/hosts /etc/hostname",
        ]);
        assert.match(out, /^nameserver 10\.1\.1\.1$/m);
        assert.match(out, /^search example\.test$/m);
        assert.match(out, /^options ndots:2$/m);
        assert.match(out, /^10\.2\.2\.2\tdb\.test$/m);
        assert.match(out, /\tnt-host$/m);
        assert.match(out, /^nt-web\b|\tnt-web\b/m);
        const plain = await ok(daemon, ["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
        assert.doesNotMatch(plain, /nameserver 127\./);
      },
    );

    await t.step("connect and disconnect a running container", async () => {
      await ok(daemon, ["run", "-d", "--name", "nt-late", "busybox", "sleep", "1000"]);
      const late = await inspect(daemon, "nt-late");
      containerIds.push(late.Id);
      const connect = await api(daemon, "POST", "/networks/nt-user/connect", {
        Container: "nt-late",
      });
      assert.equal(connect.status, 200, JSON.stringify(connect.json));
      const joined = await inspect(daemon, "nt-late");
      assert.ok(joined.NetworkSettings.Networks["nt-user"]?.IPAddress);
      const dev = await ok(daemon, ["exec", "nt-late", "cat", "/proc/net/dev"]);
      assert.match(dev, /eth1:/);
      const hosts = await ok(daemon, ["exec", "nt-late", "cat", "/etc/hosts"]);
      assert.match(hosts, /\tnt-web\b/);
      const webHosts = await ok(daemon, ["exec", "nt-web", "cat", "/etc/hosts"]);
      assert.match(webHosts, /\tnt-late\b/);
      const busy = await api(daemon, "DELETE", "/networks/nt-user");
      assert.equal(busy.status, 409);
      assert.match(busy.json.message, /has active endpoints/);
      await ok(daemon, ["rename", "nt-late", "nt-renamed"]);
      assert.match(await ok(daemon, ["exec", "nt-web", "cat", "/etc/hosts"]), /\tnt-renamed\b/);
      await ok(daemon, ["rename", "nt-renamed", "nt-late"]);
      const disconnect = await api(daemon, "POST", "/networks/nt-user/disconnect", {
        Container: "nt-late",
      });
      assert.equal(disconnect.status, 200, JSON.stringify(disconnect.json));
      assert.equal(
        (await inspect(daemon, "nt-late")).NetworkSettings.Networks["nt-user"],
        undefined,
      );
      assert.doesNotMatch(await ok(daemon, ["exec", "nt-web", "cat", "/etc/hosts"]), /\tnt-late\b/);
    });

    await t.step("a lost namespace (host reboot) comes back with the same address", async () => {
      await ok(daemon, ["stop", "-t", "1", "nt-static"]);
      const netns = `${daemon.home}/netns/${(await inspect(daemon, "nt-static")).Id}`;
      await daemon.stop();
      assert.equal((await sh("umount", [netns])).trim(), "");
      await daemon.start();
      await ok(daemon, ["start", "nt-static"]);
      assert.equal(
        (await inspect(daemon, "nt-static")).NetworkSettings.Networks["nt-user"]!.IPAddress,
        `${userNet}.50`,
      );
      assert.equal((await httpFrom(daemon, "nt-user", "nt-web")).trim(), "hello-web");
      const ping = await ok(daemon, ["exec", "nt-static", "ping", "-c", "1", "-W", "2", "nt-web"]);
      assert.match(ping, /1 packets received/);
    });

    await t.step("docker network create/ls/inspect/rm and docker run -p", async () => {
      const created = await daemon.docker([
        "network",
        "create",
        "--subnet",
        `${dockerNet}.0/24`,
        "nt-docker",
      ]);
      assert.equal(created.code, 0, created.stderr);
      networkIds.push(created.stdout.trim());
      const ls = await daemon.docker(["network", "ls"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /nt-docker\s+bridge\s+local/);
      const inspected = await daemon.docker(["network", "inspect", "nt-docker"]);
      assert.equal(inspected.code, 0, inspected.stderr);
      assert.equal(JSON.parse(inspected.stdout)[0].IPAM.Config[0].Subnet, `${dockerNet}.0/24`);
      const port = freePort();
      const run = await daemon.docker([
        "run",
        "-d",
        "--name",
        "nt-dockerrun",
        "--network",
        "nt-docker",
        "-p",
        `127.0.0.1:${port}:8080`,
        "busybox",
        ...httpd("hello-docker"),
      ]);
      assert.equal(run.code, 0, run.stderr);
      containerIds.push(run.stdout.trim());
      assert.equal((await fetchLoopback(port)).trim(), "hello-docker");
      const portOut = await daemon.docker(["port", "nt-dockerrun"]);
      assert.match(portOut.stdout, new RegExp(`8080/tcp -> 127\\.0\\.0\\.1:${port}`));
      assert.equal((await daemon.docker(["rm", "-f", "nt-dockerrun"])).code, 0);
      const rm = await daemon.docker(["network", "rm", "nt-docker"]);
      assert.equal(rm.code, 0, rm.stderr);
    });

    await t.step("a create that fails after networking undoes it", async () => {
      const ipam = await ipamEntries(daemon.home);
      const mounts = await netnsMounts(daemon.home);
      const port = freePort();
      const failed = await daemon.pouch([
        "create",
        "--name",
        "nt-undone",
        "--network",
        "nt-user",
        "-p",
        `${port}:80`,
        "--mount",
        "type=volume,src=nt-undone,dst=/data,volume-driver=nt-no-such-driver",
        "busybox",
        "true",
      ]);
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, /nt-no-such-driver/);
      assert.deepEqual(await ipamEntries(daemon.home), ipam);
      assert.equal((await netnsMounts(daemon.home)).length, mounts.length);
      assert.ok(!(await sh("iptables-save", ["-t", "nat"])).includes(`--dports ${port} `));
    });

    await t.step("a container reaches past the host masqueraded as the host", async () => {
      // "Outside": a namespace behind a veth of the host's, with no route back to the
      // containers' subnet, so only a connection masqueraded as the host gets its answer.
      const outside = `10.${octet2}.${octet3 + 5}`;
      const namespace = `pt-out-${tag}`;
      const www = await Deno.makeTempDir({ dir: daemon.dir });
      await Deno.writeTextFile(`${www}/index.html`, "outside\n");
      await sh("ip", ["netns", "add", namespace]);
      let server: Deno.ChildProcess | undefined;
      try {
        await sh("ip", ["link", "add", `vo${tag}`, "type", "veth", "peer", "name", `vi${tag}`]);
        await sh("ip", ["link", "set", `vi${tag}`, "netns", namespace]);
        await sh("ip", ["addr", "add", `${outside}.1/30`, "dev", `vo${tag}`]);
        await sh("ip", ["link", "set", `vo${tag}`, "up"]);
        await sh("ip", ["-n", namespace, "addr", "add", `${outside}.2/30`, "dev", `vi${tag}`]);
        await sh("ip", ["-n", namespace, "link", "set", `vi${tag}`, "up"]);
        server = new Deno.Command("ip", {
          args: ["netns", "exec", namespace, "busybox", "httpd", "-f", "-p", "8080", "-h", www],
          stdout: "null",
          stderr: "null",
        }).spawn();
        assert.equal((await httpFrom(daemon, "bridge", `${outside}.2`)).trim(), "outside");
        // The network's one rule did it: no container has a chain of its own.
        const save = await sh("iptables-save", ["-t", "nat"]);
        assert.doesNotMatch(save, new RegExp(`-s ${defaultNet.replaceAll(".", "\\.")}\\.\\d+/32 `));
      } finally {
        server?.kill();
        await server?.status;
        // The host's end of the veth goes with the namespace's.
        await sh("ip", ["netns", "del", namespace]);
      }
    });

    await t.step("after removing everything nothing is left", async () => {
      for (const name of ["nt-web", "nt-static", "nt-pub", "nt-all", "nt-late"]) {
        await ok(daemon, ["rm", "-f", name]);
      }
      const rm = await api(daemon, "DELETE", "/networks/nt-user");
      assert.equal(rm.status, 204);
      const pruned = await api(daemon, "POST", "/networks/prune");
      assert.deepEqual(pruned.json.NetworksDeleted, []);
      assert.deepEqual(await netnsMounts(daemon.home), []);
      assert.deepEqual(await ipamEntries(daemon.home), []);
      assert.deepEqual(await bridgePorts(bridgeName), []);
      const save = await sh("iptables-save", []);
      for (const id of [...networkIds, ...containerIds]) {
        assert.ok(!save.includes(id), `iptables still mentions ${id}:\n${save}`);
      }
      assert.ok(!save.includes(`${userNet}.`), save);
      // The default network stays, and so does its one masquerade rule; nothing per container.
      assert.deepEqual(
        save.split("\n").filter((line) => line.includes(`${defaultNet}.`)),
        [
          `-A POSTROUTING -s ${defaultNet}.0/24 ! -o ${bridgeName} -m comment --comment "pouch masquerade ${bridgeName}" -j MASQUERADE`,
        ],
      );
      const links = await sh("ip", ["-o", "link"]);
      for (const id of networkIds.slice(1)) {
        assert.ok(!links.includes(`pouch${id.slice(0, 10)}`), `bridge of ${id} left:\n${links}`);
      }
    });
  }, { args: ["--bridge-name", bridgeName, "--bip", `${defaultNet}.1/24`] });
  // The daemon removes its unused bridges, and their masquerade rules, when it stops.
  assert.doesNotMatch(await sh("ip", ["-o", "link"]), new RegExp(`\\b${bridgeName}\\b`));
  assert.ok(!(await sh("iptables-save", ["-t", "nat"])).includes(`${defaultNet}.`));
});

Deno.test("networking: a start after a crash removes what attachments left behind", async () => {
  const fakeNet = `10.${octet2}.${octet3 + 3}`;
  await withBusyboxDaemon(async (daemon) => {
    const created = await api(daemon, "POST", "/networks/create", {
      Name: "nt-crash",
      IPAM: { Config: [{ Subnet: `${fakeNet}.0/24` }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const network = (await api(daemon, "GET", "/networks/nt-crash")).json;
    const bridge = network.Options["com.docker.network.bridge.name"] as string;
    const port = freePort();
    await ok(daemon, [
      "run",
      "-d",
      "--name",
      "nt-survivor",
      "--network",
      "nt-crash",
      "-p",
      `127.0.0.1:${port}:8080`,
      "busybox",
      ...httpd("still-here"),
    ]);
    const survivor = await inspect(daemon, "nt-survivor");
    assert.equal((await fetchLoopback(port)).trim(), "still-here");

    // What a crash between CNI ADD and the record's commit leaves: attachments of containers
    // the daemon does not know, one with its namespace still mounted and one without.
    const conf = bridgeConfList({
      name: network.Id,
      bridge,
      subnet: `${fakeNet}.0/24`,
      gateway: `${fakeNet}.1`,
      mtu: 1500,
      internal: false,
    }, {
      ipamDir: `${daemon.home}/network/ipam`,
      iptables: true,
      ipForward: true,
      portMappings: true,
      // Attachments as earlier versions made them: the sweep must find their chains too.
      attachmentMasquerade: true,
    });
    const cni = new CniRunner();
    const ghosts = ["a", "b"].map((c) => c.repeat(64));
    for (const ghost of ghosts) {
      const netns = `${daemon.home}/netns/${ghost}`;
      await createNetns(netns);
      await cni.add(conf, {
        containerId: ghost,
        netns,
        ifName: "eth0",
        capabilityArgs: {
          portMappings: [{ hostPort: freePort(), containerPort: 80, protocol: "tcp", hostIP: "" }],
        },
      });
    }
    assert.equal((await bridgePorts(bridge)).length, 3);
    assert.equal((await ipamEntries(daemon.home)).length, 3);
    assert.ok((await sh("iptables-save", ["-t", "nat"])).includes(ghosts[0]!));

    await daemon.crash();
    // The second ghost's namespace is gone too (a reboot): its veth goes with it, but the
    // bridge plugin can no longer find its masquerade rules.
    await removeNetns(`${daemon.home}/netns/${ghosts[1]}`);
    await daemon.start();

    const save = await sh("iptables-save", ["-t", "nat"]);
    for (const ghost of ghosts) assert.ok(!save.includes(ghost), save);
    assert.ok(save.includes(survivor.Id), "the live container's rules were removed");
    assert.deepEqual(await ipamEntries(daemon.home), [
      `${network.Id}/${survivor.NetworkSettings.Networks["nt-crash"]!.IPAddress}`,
    ]);
    assert.equal((await netnsMounts(daemon.home)).length, 1);
    assert.equal((await bridgePorts(bridge)).length, 1);
    assert.equal((await fetchLoopback(port)).trim(), "still-here");
    await ok(daemon, ["rm", "-f", "nt-survivor"]);
    assert.equal((await api(daemon, "DELETE", "/networks/nt-crash")).status, 204);
    const after = await sh("iptables-save", ["-t", "nat"]);
    assert.ok(!after.includes(network.Id) && !after.includes(`${fakeNet}.`), after);
    assert.doesNotMatch(await sh("ip", ["-o", "link"]), new RegExp(`\\b${bridge}\\b`));
  }, { args: ["--bridge-name", `${bridgeName}c`, "--bip", `10.${octet2}.${octet3 + 4}.1/24`] });
});
