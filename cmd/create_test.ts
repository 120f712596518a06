import assert from "node:assert/strict";
import { buildCreateRequest, runFlags } from "./create.ts";
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
