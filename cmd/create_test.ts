import assert from "node:assert/strict";
import {
  buildCreateRequest,
  parseExpose,
  parseExtraHost,
  parseMount,
  parsePublish,
  runFlags,
} from "./create.ts";
import { Flags, parseFlags, UsageError } from "./flags.ts";

function build(argv: string[], files: Record<string, string> = {}) {
  const flags = new Flags(parseFlags(argv, runFlags, { interspersed: false }), runFlags);
  return buildCreateRequest(flags, {
    lookupEnv: (k) => ({ HOME: "/root" } as Record<string, string>)[k],
    readFile: (path) => {
      const content = files[path];
      if (content === undefined) throw new Deno.errors.NotFound(path);
      return content;
    },
    isRun: true,
  });
}

Deno.test("buildCreateRequest() maps run flags onto Config and HostConfig", () => {
  const req = build([
    "-d",
    "--name",
    "web",
    "-e",
    "A=1",
    "-e",
    "HOME",
    "-e",
    "UNSET",
    "-m",
    "64m",
    "--cpus",
    "1.5",
    "--memory-swap=-1",
    "-l",
    "a=b",
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "SYS_TIME",
    "--restart",
    "on-failure:3",
    "-p",
    "127.0.0.1:8080:80",
    "-v",
    "/src:/dst:ro",
    "-v",
    "/anon",
    "--tmpfs",
    "/run:size=1m",
    "--ulimit",
    "nofile=100:200",
    "--entrypoint",
    "",
    "busybox",
    "sh",
    "-c",
    "echo hi",
  ]);
  assert.equal(req.name, "web");
  assert.equal(req.detach, true);
  assert.deepEqual(req.body.Cmd, ["sh", "-c", "echo hi"]);
  assert.deepEqual(req.body.Entrypoint, [""]);
  assert.deepEqual(req.body.Env, ["A=1", "HOME=/root"]);
  assert.deepEqual(req.body.Labels, { a: "b" });
  assert.equal(req.body.AttachStdout, false);
  assert.deepEqual(req.body.Volumes, { "/anon": {} });
  assert.deepEqual(req.body.ExposedPorts, { "80/tcp": {} });
  assert.deepEqual(req.body.HostConfig, {
    Memory: 64 * 1024 * 1024,
    MemorySwap: -1,
    NanoCpus: 1.5e9,
    Ulimits: [{ Name: "nofile", Soft: 100, Hard: 200 }],
    CapAdd: ["NET_ADMIN", "SYS_TIME"],
    Binds: ["/src:/dst:ro"],
    Tmpfs: { "/run": "size=1m" },
    PortBindings: { "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }] },
    RestartPolicy: { Name: "on-failure", MaximumRetryCount: 3 },
  });
});

Deno.test("buildCreateRequest() attaches stdio for a foreground run with -i", () => {
  const req = build(["-i", "--rm", "busybox"]);
  assert.equal(req.body.AttachStdin, true);
  assert.equal(req.body.OpenStdin, true);
  assert.equal(req.body.StdinOnce, true);
  assert.equal(req.body.AttachStdout, true);
  assert.equal(req.body.HostConfig.AutoRemove, true);
  assert.equal(req.body.Cmd, undefined);
});

Deno.test("buildCreateRequest() sends PouchContainer's fields", () => {
  const id = "a".repeat(64);
  const req = build([
    "--rich",
    "--rich-mode",
    "dumb-init",
    "--initscript",
    "/init.sh",
    "--enableLxcfs",
    "--disk-quota",
    "10g",
    "--disk-quota",
    "/data=1g",
    "--specific-id",
    id,
    "busybox",
  ]);
  assert.equal(req.body.Rich, true);
  assert.equal(req.body.RichMode, "dumb-init");
  assert.equal(req.body.InitScript, "/init.sh");
  assert.deepEqual(req.body.DiskQuota, { "/": "10g", "/data": "1g" });
  assert.equal(req.body.SpecificID, id);
  assert.equal(req.body.HostConfig.EnableLxcfs, true);
});

Deno.test("buildCreateRequest() sends --initcmd and the OCI hooks", () => {
  const req = build([
    "--rich",
    "--initcmd",
    "echo hi >> /log",
    "--prestart-hook",
    "/bin/a x",
    "--prestart-hook",
    "/bin/b",
    "--poststop-hook",
    "/bin/c",
    "busybox",
  ]);
  assert.equal(req.body.InitCmd, "echo hi >> /log");
  assert.deepEqual(req.body.HostConfig.PrestartHooks, ["/bin/a x", "/bin/b"]);
  assert.deepEqual(req.body.HostConfig.PoststopHooks, ["/bin/c"]);
});

Deno.test("buildCreateRequest() sends --log-driver and --log-opt as HostConfig.LogConfig", () => {
  const req = build(["--log-driver", "json-file", "--log-opt", "max-size=10m", "busybox"]);
  assert.deepEqual(req.body.HostConfig.LogConfig, {
    Type: "json-file",
    Config: { "max-size": "10m" },
  });
  // Options alone keep the daemon's driver (Docker's empty Type).
  const opts = build(["--log-opt", "max-file=2", "busybox"]);
  assert.deepEqual(opts.body.HostConfig.LogConfig, { Type: "", Config: { "max-file": "2" } });
  assert.equal(build(["busybox"]).body.HostConfig.LogConfig, undefined);
  assert.throws(() => build(["--log-opt", "novalue", "busybox"]), UsageError);
});

Deno.test("buildCreateRequest() reads env and label files", () => {
  const req = build(["--env-file", "e", "--label-file", "l", "-e", "B=2", "busybox"], {
    e: "# x\nA=1\nHOME\n",
    l: "x=1\ny\n",
  });
  assert.deepEqual(req.body.Env, ["A=1", "HOME=/root", "B=2"]);
  assert.deepEqual(req.body.Labels, { x: "1", y: "" });
});

Deno.test("buildCreateRequest() refuses bad values before anything is sent", () => {
  const bad = [
    ["-m", "abc"],
    ["--cpus", "-1"],
    ["--memory-swap", "x"],
    ["--restart", "sometimes"],
    ["--restart", "always:3"],
    ["--ulimit", "nofile"],
    ["-p", "a:b"],
    ["--pids-limit", "many"],
    ["--oom-score-adj", "2000"],
    ["--rich-mode", "magic"],
    ["--specific-id", "xyz"],
    ["--disk-quota", "lots"],
    ["--rm", "--restart", "always"],
  ];
  for (const argv of bad) {
    assert.throws(() => build([...argv, "busybox"]), UsageError, argv.join(" "));
  }
  assert.throws(
    () => build(["-m", "abc", "busybox"]),
    (e) =>
      e instanceof UsageError &&
      e.message === `invalid argument "abc" for "-m, --memory" flag: invalid size: 'abc'`,
  );
});

Deno.test("parseMount() reads Docker's --mount forms", () => {
  assert.deepEqual(parseMount("type=volume,src=data,dst=/data,ro"), {
    Type: "volume",
    Source: "data",
    Target: "/data",
    ReadOnly: true,
  });
  // The type defaults to volume; keys are case-insensitive; no source is an anonymous volume.
  assert.deepEqual(parseMount("Target=/scratch,readonly=false,volume-nocopy"), {
    Type: "volume",
    Target: "/scratch",
    ReadOnly: false,
    VolumeOptions: { NoCopy: true },
  });
  assert.deepEqual(
    parseMount(
      'source=db,destination=/db,volume-driver=local,volume-opt=size=8m,"volume-opt=o=a,b",' +
        "volume-label=app=db,volume-label=bare,volume-nocopy=0",
    ),
    {
      Type: "volume",
      Source: "db",
      Target: "/db",
      VolumeOptions: {
        DriverConfig: { Name: "local", Options: { size: "8m", o: "a,b" } },
        Labels: { app: "db", bare: "" },
        NoCopy: false,
      },
    },
  );
  assert.deepEqual(parseMount("type=BIND,src=/srv,dst=/srv,bind-propagation=RSHARED,ro=1"), {
    Type: "bind",
    Source: "/srv",
    Target: "/srv",
    BindOptions: { Propagation: "rshared" },
    ReadOnly: true,
  });
  assert.deepEqual(
    parseMount("type=bind,src=.,dst=/a", { cwd: () => "/home/me/" }).Source,
    "/home/me",
  );
  assert.deepEqual(
    parseMount("type=bind,src=./x,dst=/a", { cwd: () => "/home/me" }).Source,
    "/home/me/x",
  );
  assert.deepEqual(parseMount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770"), {
    Type: "tmpfs",
    Target: "/t",
    TmpfsOptions: { SizeBytes: 64 * 1024 * 1024, Mode: 0o1770 },
  });
});

Deno.test("parseMount() refuses bad syntax with the Docker CLI's messages", () => {
  const cases: Array<[string, string]> = [
    ["src=data", "target is required"],
    ["type=,dst=/x", "type is required"],
    ["type=volume,dst=/x,bogus", "invalid field 'bogus' must be a key=value pair"],
    ["type=volume,dst=/x,color=red", "unexpected key 'color' in 'color=red'"],
    ["type=volume,dst=/x,ro=maybe", "invalid value for ro: maybe"],
    ["type=volume,dst=/x,volume-nocopy=no", "invalid value for volume-nocopy: no"],
    ["type=tmpfs,dst=/x,tmpfs-size=big", "invalid value for tmpfs-size: big"],
    ["type=tmpfs,dst=/x,tmpfs-mode=0999", "invalid value for tmpfs-mode: 0999"],
    [
      "type=bind,src=/a,dst=/x,volume-opt=a=b",
      "cannot mix 'volume-*' options with mount type 'bind'",
    ],
    [
      "type=volume,dst=/x,bind-propagation=shared",
      "cannot mix 'bind-*' options with mount type 'volume'",
    ],
    [
      "type=bind,src=/a,dst=/x,tmpfs-size=1m",
      "cannot mix 'tmpfs-*' options with mount type 'bind'",
    ],
    ['type=volume,dst="/x', `bare " in non-quoted-field`],
    ['"type=volume,dst=/x', `extraneous or missing " in quoted-field`],
    ['"type=volume"x,dst=/x', `extraneous or missing " in quoted-field`],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseMount(text), (e) => (e as Error).message === message, text);
  }
});

Deno.test("buildCreateRequest() maps --mount, --volumes-from and --volume-driver", () => {
  const req = build([
    "--mount",
    "type=volume,src=v,dst=/data",
    "--mount",
    "type=tmpfs,dst=/t,tmpfs-size=1m",
    "--volumes-from",
    "web:ro",
    "--volumes-from",
    "db",
    "--volume-driver",
    "local",
    "--tmpfs",
    "/run",
    "busybox",
  ]);
  assert.deepEqual(req.body.HostConfig, {
    Mounts: [
      { Type: "volume", Source: "v", Target: "/data" },
      { Type: "tmpfs", Target: "/t", TmpfsOptions: { SizeBytes: 1024 * 1024 } },
    ],
    VolumesFrom: ["web:ro", "db"],
    VolumeDriver: "local",
    Tmpfs: { "/run": "" },
  });
  assert.throws(
    () => build(["--mount", "type=volume", "busybox"]),
    (e) =>
      e instanceof UsageError &&
      e.message === `invalid argument "type=volume" for "--mount" flag: target is required`,
  );
});

Deno.test("buildCreateRequest() sends --network, --ip and --network-alias as the Docker CLI does", () => {
  const user = build([
    "--net",
    "front",
    "--ip",
    "10.1.0.9",
    "--network-alias",
    "www",
    "--network-alias",
    "api",
    "busybox",
  ]);
  assert.equal(user.body.HostConfig.NetworkMode, "front");
  assert.deepEqual(user.body.NetworkingConfig, {
    EndpointsConfig: {
      front: { IPAMConfig: { IPv4Address: "10.1.0.9" }, Aliases: ["www", "api"] },
    },
  });
  // One network without endpoint options: the Docker CLI sends the mode alone.
  for (const mode of ["front", "bridge", "host", "none", "container:web"]) {
    const req = build(["--network", mode, "busybox"]);
    assert.equal(req.body.HostConfig.NetworkMode, mode);
    assert.equal(req.body.NetworkingConfig, undefined, mode);
  }
  // PouchContainer allows --ip on its bridge: sent, the daemon decides.
  const bridge = build(["--network=bridge", "--ip", "192.168.5.20", "busybox"]);
  assert.deepEqual(bridge.body.NetworkingConfig, {
    EndpointsConfig: { bridge: { IPAMConfig: { IPv4Address: "192.168.5.20" } } },
  });
  // Without --network the Docker CLI names the network "default".
  const noNet = build(["--ip", "192.168.5.21", "busybox"]);
  assert.equal(noNet.body.HostConfig.NetworkMode, "default");
  assert.deepEqual(Object.keys(noNet.body.NetworkingConfig!.EndpointsConfig), ["default"]);
  // Nothing network-related given: nothing sent.
  const plain = build(["busybox"]);
  assert.equal(plain.body.HostConfig.NetworkMode, undefined);
  assert.equal(plain.body.NetworkingConfig, undefined);
});

Deno.test("buildCreateRequest() maps ports, DNS, hosts, hostname and MAC address", () => {
  const req = build([
    "-p",
    "8080:80",
    "-p",
    "127.0.0.1::53/udp",
    "-p",
    "9000-9001:90-91",
    "-p",
    "[::1]:8443:443",
    "-p",
    "8080:80",
    "-P",
    "--expose",
    "7000-7001/udp",
    "--expose",
    "80",
    "--dns",
    "1.1.1.1",
    "--dns",
    "2606:4700::1111",
    "--dns-search",
    "example.com",
    "--dns-opt",
    "ndots:2",
    "--dns-option",
    "timeout:1",
    "--add-host",
    "db:10.0.0.5",
    "--add-host",
    "gw=host-gateway",
    "--add-host",
    "v6=[::1]",
    "-h",
    "web1",
    "--mac-address",
    "92:d0:c6:0a:29:33",
    "busybox",
  ]);
  assert.equal(req.body.Hostname, "web1");
  assert.equal(req.body.MacAddress, "92:d0:c6:0a:29:33");
  assert.deepEqual(req.body.ExposedPorts, {
    "80/tcp": {},
    "53/udp": {},
    "90/tcp": {},
    "91/tcp": {},
    "443/tcp": {},
    "7000/udp": {},
    "7001/udp": {},
  });
  assert.deepEqual(req.body.HostConfig, {
    Dns: ["1.1.1.1", "2606:4700::1111"],
    DnsSearch: ["example.com"],
    DnsOptions: ["ndots:2", "timeout:1"],
    ExtraHosts: ["db:10.0.0.5", "gw:host-gateway", "v6:::1"],
    PortBindings: {
      "80/tcp": [{ HostIp: "", HostPort: "8080" }, { HostIp: "", HostPort: "8080" }],
      "53/udp": [{ HostIp: "127.0.0.1", HostPort: "" }],
      "90/tcp": [{ HostIp: "", HostPort: "9000" }],
      "91/tcp": [{ HostIp: "", HostPort: "9001" }],
      "443/tcp": [{ HostIp: "::1", HostPort: "8443" }],
    },
    PublishAllPorts: true,
  });
});

Deno.test("parsePublish() reads Docker's port specs, ranges and the long syntax", () => {
  assert.deepEqual(parsePublish("80"), [{ port: "80/tcp", binding: { HostIp: "", HostPort: "" } }]);
  assert.deepEqual(parsePublish("0.0.0.0:80:80/UDP"), [
    { port: "80/udp", binding: { HostIp: "0.0.0.0", HostPort: "80" } },
  ]);
  // A host range for one container port: the daemon picks a port of the range.
  assert.deepEqual(parsePublish("8000-8010:80"), [
    { port: "80/tcp", binding: { HostIp: "", HostPort: "8000-8010" } },
  ]);
  assert.deepEqual(parsePublish("published=8080,target=80,protocol=udp"), [
    { port: "80/udp", binding: { HostIp: "", HostPort: "8080" } },
  ]);
  assert.deepEqual(parsePublish("80-81"), [
    { port: "80/tcp", binding: { HostIp: "", HostPort: "" } },
    { port: "81/tcp", binding: { HostIp: "", HostPort: "" } },
  ]);
  const refused: Array<[string, string]> = [
    ["a:b", "invalid containerPort: b"],
    ["x:80", "invalid hostPort: x"],
    ["70000", "invalid containerPort: 70000"],
    ["81-80", "invalid containerPort: 81-80"],
    ["1.2.3:80:80", "invalid IP address: 1.2.3"],
    ["8080:", "no port specified: 8080:<empty>"],
    [
      "9000-9002:80-81",
      "invalid ranges specified for container and host Ports: 80-81 and 9000-9002",
    ],
    ["80/icmp", "invalid proto: icmp"],
  ];
  for (const [spec, message] of refused) {
    assert.throws(() => parsePublish(spec), { message }, spec);
  }
});

Deno.test("parseExpose() and parseExtraHost() follow the Docker CLI's rules", () => {
  assert.deepEqual(parseExpose("53/udp"), ["53/udp"]);
  assert.deepEqual(parseExpose("8000-8002"), ["8000/tcp", "8001/tcp", "8002/tcp"]);
  assert.throws(() => parseExpose("80:80"), { message: "invalid port format for --expose: 80:80" });
  assert.throws(() => parseExpose("x"), /invalid range format for --expose: x/);
  assert.equal(parseExtraHost("db:10.0.0.5"), "db:10.0.0.5");
  assert.equal(parseExtraHost("db=10.0.0.5"), "db:10.0.0.5");
  assert.equal(parseExtraHost("v6:::1"), "v6:::1");
  assert.throws(() => parseExtraHost("db"), { message: 'bad format for add-host: "db"' });
  assert.throws(() => parseExtraHost(":1.2.3.4"), {
    message: 'bad format for add-host: ":1.2.3.4"',
  });
  assert.throws(() => parseExtraHost("db:nope"), {
    message: 'invalid IP address in add-host: "nope"',
  });
});

Deno.test("buildCreateRequest() refuses bad network values with pflag's wording", () => {
  const refused: Array<[string[], string]> = [
    [["--ip", "10.1.0"], 'invalid argument "10.1.0" for "--ip" flag: invalid IPv4 address: 10.1.0'],
    [["--ip", "::1"], 'invalid argument "::1" for "--ip" flag: invalid IPv4 address: ::1'],
    [
      ["--network", "container:"],
      'invalid argument "container:" for "--network" flag: expected NAME, bridge, host, none or container:<name|id>',
    ],
    [
      ["--dns", "dns.example"],
      'invalid argument "dns.example" for "--dns" flag: IP address is not correctly formatted: dns.example',
    ],
    [
      ["--dns-search", "-bad-"],
      'invalid argument "-bad-" for "--dns-search" flag: -bad- is not a valid domain',
    ],
    [
      ["--mac-address", "92:d0:c6"],
      'invalid argument "92:d0:c6" for "--mac-address" flag: 92:d0:c6 is not a valid mac address',
    ],
    [
      ["-p", "80/icmp"],
      'invalid argument "80/icmp" for "-p, --publish" flag: invalid proto: icmp',
    ],
    [
      ["--expose", "1-2-3"],
      'invalid argument "1-2-3" for "--expose" flag: invalid range format for --expose: 1-2-3, error: invalid port: 1-2-3',
    ],
    [
      ["--add-host", "db"],
      'invalid argument "db" for "--add-host" flag: bad format for add-host: "db"',
    ],
  ];
  for (const [argv, message] of refused) {
    assert.throws(
      () => build([...argv, "busybox"]),
      (e) => e instanceof UsageError && e.message === message,
      argv.join(" "),
    );
  }
});

Deno.test("buildCreateRequest() sends a seccomp profile file's JSON as Docker's CLI does", () => {
  const profile = '{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [ {"names": ["mkdir"],' +
    ' "action": "SCMP_ACT_ERRNO", "comment": "a b"} ]\n}\n';
  const req = build([
    "--security-opt",
    "seccomp=/p.json",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "no-new-privileges",
    "--security-opt",
    "label:disable",
    "busybox",
  ], { "/p.json": profile });
  assert.deepEqual(req.body.HostConfig?.SecurityOpt, [
    'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],' +
    '"action":"SCMP_ACT_ERRNO","comment":"a b"}]}',
    "seccomp=unconfined",
    "no-new-privileges",
    "label:disable",
  ]);
  assert.throws(
    () => build(["--security-opt", "seccomp=/missing.json", "busybox"]),
    (err: unknown) =>
      err instanceof UsageError &&
      /opening seccomp profile \(\/missing.json\) failed/.test(err.message),
  );
  assert.throws(
    () => build(["--security-opt", "seccomp=/bad.json", "busybox"], { "/bad.json": "{" }),
    (err: unknown) => err instanceof UsageError && /compacting json/.test(err.message),
  );
  assert.throws(() => build(["--security-opt", "apparmor", "busybox"]), UsageError);
});
