import assert from "node:assert/strict";
import { buildCreateRequest, parseMount, runFlags } from "./create.ts";
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
