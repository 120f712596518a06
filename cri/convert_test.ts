import assert from "node:assert/strict";
import { isInvalidArgument } from "../engine/errors.ts";
import type { Container } from "../engine/container.ts";
import type { StatsJson } from "../engine/stats.ts";
import {
  addLocalhostSeccomp,
  containerCreateRequest,
  containerName,
  containerStateOf,
  exitReasonOf,
  LABEL_SANDBOX_ID,
  LABEL_TYPE,
  matchesId,
  matchesLabels,
  ociResourcesOf,
  sandboxCreateRequest,
  sandboxName,
  type SandboxRecord,
  seccompOf,
  toNanos,
  usageOf,
  usesHostNetwork,
  validateContainerConfig,
  validateSandboxConfig,
} from "./convert.ts";
import type { PodSandboxConfig } from "./types.ts";

const POD: PodSandboxConfig = {
  metadata: { name: "web", namespace: "default", uid: "u-1", attempt: 2 },
  hostname: "web-0",
  logDirectory: "/var/log/pods/x",
  dnsConfig: { servers: ["10.0.0.10"], searches: ["svc.local"], options: ["ndots:5"] },
  portMappings: [{ protocol: "TCP", containerPort: 80, hostPort: 8080, hostIp: "" }, {
    protocol: "UDP",
    containerPort: 53,
  }],
  labels: { app: "web" },
  linux: {
    cgroupParent: "/kubepods/pod-u-1",
    sysctls: { "net.ipv4.ip_forward": "1" },
    securityContext: { namespaceOptions: { network: "POD", pid: "POD", ipc: "POD" } },
  },
};

function sandboxOf(config: PodSandboxConfig, hostNetwork = false): SandboxRecord {
  return {
    id: "a".repeat(64),
    config,
    createdAt: 1,
    runtimeHandler: "",
    hostNetwork,
    state: "ready",
  };
}

Deno.test("sandboxName() and containerName() follow dockershim's k8s_ names", () => {
  assert.equal(sandboxName(POD.metadata!), "k8s_POD_web_default_u-1_2");
  assert.equal(
    containerName(POD.metadata!, { name: "nginx", attempt: 0 }),
    "k8s_nginx_web_default_u-1_0",
  );
  assert.equal(
    sandboxName({ name: "a/b", namespace: "n s", uid: "x", attempt: 0 }),
    "k8s_POD_a-b_n-s_x_0",
  );
});

Deno.test("validateSandboxConfig() refuses configs without metadata or with bad ports", () => {
  for (
    const bad of [
      undefined,
      {},
      { metadata: { name: "x", namespace: "", uid: "u", attempt: 0 } },
      { ...POD, portMappings: [{ containerPort: 0 }] },
    ]
  ) {
    assert.throws(() => validateSandboxConfig(bad as PodSandboxConfig), isInvalidArgument);
  }
  assert.equal(validateSandboxConfig(POD), POD);
});

Deno.test("validateContainerConfig() needs a name, an image and absolute mount paths", () => {
  const good = { metadata: { name: "c", attempt: 0 }, image: { image: "busybox" } };
  assert.equal(validateContainerConfig(good), good);
  assert.throws(() => validateContainerConfig({ image: { image: "busybox" } }), isInvalidArgument);
  assert.throws(() => validateContainerConfig({ metadata: good.metadata }), isInvalidArgument);
  assert.throws(
    () =>
      validateContainerConfig({
        ...good,
        mounts: [{ containerPath: "data", hostPath: "/srv" }],
      }),
    isInvalidArgument,
  );
});

Deno.test("sandboxCreateRequest() maps DNS, ports, sysctls, cgroup parent and labels", () => {
  const request = sandboxCreateRequest(POD, { image: "pause:latest", networkMode: "bridge" });
  assert.equal(request.Image, "pause:latest");
  assert.equal(request.Hostname, "web-0");
  assert.equal(request.Labels?.[LABEL_TYPE], "sandbox");
  assert.equal(request.Labels?.app, "web");
  const host = request.HostConfig!;
  assert.equal(host.NetworkMode, "bridge");
  assert.equal(host.IpcMode, "shareable");
  assert.equal(host.CgroupParent, "/kubepods/pod-u-1");
  assert.deepEqual(host.Dns, ["10.0.0.10"]);
  assert.deepEqual(host.DnsSearch, ["svc.local"]);
  assert.deepEqual(host.DnsOptions, ["ndots:5"]);
  assert.deepEqual(host.Sysctls, { "net.ipv4.ip_forward": "1" });
  assert.deepEqual(host.PortBindings, { "80/tcp": [{ HostIp: "", HostPort: "8080" }] });
  assert.deepEqual(Object.keys(request.ExposedPorts ?? {}), ["80/tcp", "53/udp"]);
});

Deno.test("sandboxCreateRequest() of a host-network pod shares the host's network and UTS", () => {
  const hostPod: PodSandboxConfig = {
    ...POD,
    linux: {
      securityContext: {
        namespaceOptions: { network: "NODE", pid: "NODE", ipc: "NODE" },
        runAsUser: { value: 65535 },
        runAsGroup: { value: 65535 },
      },
    },
  };
  assert.ok(usesHostNetwork(hostPod));
  const request = sandboxCreateRequest(hostPod, { image: "pause", networkMode: "host" });
  assert.equal(request.HostConfig?.UTSMode, "host");
  assert.equal(request.HostConfig?.PidMode, "host");
  assert.equal(request.HostConfig?.IpcMode, "host");
  assert.equal(request.HostConfig?.PortBindings, undefined);
  assert.equal(request.Hostname, "");
  assert.equal(request.User, "65535:65535");
});

Deno.test("containerCreateRequest() joins the sandbox and maps the container's config", () => {
  const request = containerCreateRequest({
    metadata: { name: "app", attempt: 0 },
    image: { image: "busybox" },
    command: ["/bin/server"],
    args: ["--port", "80"],
    workingDir: "/srv",
    envs: [{ key: "A", value: "1" }, { key: "B", value: new TextEncoder().encode("two") }],
    mounts: [
      { containerPath: "/data", hostPath: "/srv/data", readonly: true },
      {
        containerPath: "/shared",
        hostPath: "/srv/shared",
        propagation: "PROPAGATION_BIDIRECTIONAL",
      },
    ],
    devices: [{ containerPath: "/dev/xx", hostPath: "/dev/null", permissions: "" }],
    labels: { tier: "front" },
    tty: true,
    stdin: true,
    linux: {
      resources: {
        cpuShares: 512,
        cpuQuota: 50000,
        cpuPeriod: 100000,
        memoryLimitInBytes: 1 << 26,
      },
      securityContext: {
        capabilities: { addCapabilities: ["NET_ADMIN"], dropCapabilities: ["ALL"] },
        runAsUser: { value: 1000 },
        runAsGroup: { value: 100 },
        readonlyRootfs: true,
        noNewPrivs: true,
        supplementalGroups: [5],
        namespaceOptions: { pid: "POD" },
      },
    },
  }, sandboxOf(POD));
  const join = `container:${"a".repeat(64)}`;
  const host = request.HostConfig!;
  assert.equal(host.NetworkMode, join);
  assert.equal(host.IpcMode, join);
  assert.equal(host.UTSMode, join);
  assert.equal(host.PidMode, join);
  assert.equal(host.CgroupParent, "/kubepods/pod-u-1");
  assert.deepEqual(host.Binds, ["/srv/data:/data:ro", "/srv/shared:/shared:rshared"]);
  assert.deepEqual(host.Devices, [
    { PathOnHost: "/dev/null", PathInContainer: "/dev/xx", CgroupPermissions: "rwm" },
  ]);
  assert.deepEqual(host.CapAdd, ["NET_ADMIN"]);
  assert.deepEqual(host.CapDrop, ["ALL"]);
  // No profile asked for: unconfined, as containerd runs CRI containers.
  assert.deepEqual(host.SecurityOpt, ["no-new-privileges", "seccomp=unconfined"]);
  assert.deepEqual(host.GroupAdd, ["5"]);
  assert.equal(host.ReadonlyRootfs, true);
  assert.equal(host.CpuShares, 512);
  assert.equal(host.CpuQuota, 50000);
  assert.equal(host.Memory, 1 << 26);
  assert.deepEqual(request.Entrypoint, ["/bin/server"]);
  assert.deepEqual(request.Cmd, ["--port", "80"]);
  assert.deepEqual(request.Env, ["A=1", "B=two"]);
  assert.equal(request.User, "1000:100");
  assert.equal(request.WorkingDir, "/srv");
  assert.equal(request.Tty, true);
  assert.equal(request.OpenStdin, true);
  assert.equal(request.Labels?.[LABEL_SANDBOX_ID], "a".repeat(64));
  assert.equal(request.Labels?.[LABEL_TYPE], "container");
  assert.equal(request.Labels?.tier, "front");
});

Deno.test("containerCreateRequest() keeps the image's command without one, and host modes", () => {
  const request = containerCreateRequest(
    { metadata: { name: "c", attempt: 0 }, image: { image: "busybox" }, args: ["x"] },
    sandboxOf({ ...POD, linux: { securityContext: { namespaceOptions: { ipc: "NODE" } } } }, true),
  );
  assert.equal(request.Entrypoint, null);
  assert.deepEqual(request.Cmd, ["x"]);
  assert.equal(request.HostConfig?.NetworkMode, "host");
  assert.equal(request.HostConfig?.UTSMode, "host");
  assert.equal(request.HostConfig?.IpcMode, "host");
  // The kubelet's default PID mode is a namespace of the container's own.
  assert.equal(request.HostConfig?.PidMode, "");
});

Deno.test("ociResourcesOf() builds an OCI LinuxResources update", () => {
  assert.deepEqual(ociResourcesOf({ cpuShares: 2, memoryLimitInBytes: 100, cpusetCpus: "0" }), {
    cpu: { shares: 2, cpus: "0" },
    memory: { limit: 100 },
  });
});

Deno.test("matchesLabels() and matchesId() filter as the CRI's lists do", () => {
  assert.ok(matchesLabels({ a: "1", b: "2" }, { a: "1" }));
  assert.ok(!matchesLabels({ a: "1" }, { a: "2" }));
  assert.ok(matchesLabels({}, undefined));
  assert.ok(matchesId("abcdef", ""));
  assert.ok(matchesId("abcdef", "abc"));
  assert.ok(!matchesId("abcdef", "abd"));
});

function containerWith(state: Partial<Container["state"]>): Container {
  return {
    state: {
      Status: "exited",
      Pid: 0,
      ExitCode: 0,
      Error: "",
      OOMKilled: false,
      StartedAt: "",
      FinishedAt: "",
      ...state,
    },
  } as Container;
}

Deno.test("containerStateOf() and exitReasonOf() map the engine's states", () => {
  assert.equal(containerStateOf(containerWith({ Status: "created" })), "CONTAINER_CREATED");
  assert.equal(containerStateOf(containerWith({ Status: "paused" })), "CONTAINER_RUNNING");
  assert.equal(containerStateOf(containerWith({ Status: "exited" })), "CONTAINER_EXITED");
  assert.equal(containerStateOf(undefined), "CONTAINER_UNKNOWN");
  assert.equal(exitReasonOf(containerWith({ ExitCode: 0 })), "Completed");
  assert.equal(exitReasonOf(containerWith({ ExitCode: 2 })), "Error");
  assert.equal(exitReasonOf(containerWith({ ExitCode: 137, OOMKilled: true })), "OOMKilled");
  assert.equal(exitReasonOf(containerWith({ Status: "running" })), "");
});

Deno.test("toNanos() converts RFC 3339 times, zero for Docker's zero time", () => {
  assert.equal(toNanos("0001-01-01T00:00:00Z"), 0);
  assert.equal(toNanos(""), 0);
  assert.equal(toNanos("1970-01-01T00:00:01.5Z"), 1_500_000_000);
});

Deno.test("usageOf() takes the working set as usage less inactive file pages", () => {
  const stats = {
    read: "2026-01-01T00:00:00Z",
    cpu_stats: { cpu_usage: { total_usage: 12345 } },
    memory_stats: { usage: 1000, stats: { total_inactive_file: 300, total_rss: 500 } },
  } as unknown as StatsJson;
  const usage = usageOf(stats);
  assert.deepEqual(usage.cpu.usageCoreNanoSeconds, { value: 12345 });
  assert.deepEqual(usage.memory.workingSetBytes, { value: 700 });
  assert.deepEqual(usage.memory.rssBytes, { value: 500 });
});

Deno.test("seccompOf() reads the CRI's profile as containerd does: unconfined unless asked", () => {
  assert.deepEqual(seccompOf(undefined), { kind: "unconfined" });
  assert.deepEqual(seccompOf({ seccomp: { profileType: "RuntimeDefault" } }), { kind: "default" });
  assert.deepEqual(seccompOf({ seccomp: { profileType: "Unconfined" } }), { kind: "unconfined" });
  assert.deepEqual(
    seccompOf({ seccomp: { profileType: "Localhost", localhostRef: "/p.json" } }),
    { kind: "localhost", path: "/p.json" },
  );
  assert.deepEqual(seccompOf({ seccompProfilePath: "runtime/default" }), { kind: "default" });
  assert.deepEqual(seccompOf({ seccompProfilePath: "localhost//p.json" }), {
    kind: "localhost",
    path: "/p.json",
  });
  const request = containerCreateRequest({
    metadata: { name: "c", attempt: 0 },
    image: { image: "busybox" },
  }, {
    id: "s".repeat(64),
    config: {},
    hostNetwork: true,
  } as never);
  assert.ok(request.HostConfig?.SecurityOpt?.includes("seccomp=unconfined"));
});

Deno.test("sandboxCreateRequest() follows the pod's seccomp profile as containerd's CRI does", () => {
  const securityOptOf = (security: PodSandboxConfig["linux"]) =>
    sandboxCreateRequest({ ...POD, linux: security }, {
      image: "pause:latest",
      networkMode: "host",
    })
      .HostConfig?.SecurityOpt;
  assert.deepEqual(securityOptOf(undefined), ["seccomp=unconfined"]);
  assert.deepEqual(
    securityOptOf({ securityContext: { seccomp: { profileType: "RuntimeDefault" } } }),
    [],
  );
  assert.deepEqual(
    securityOptOf({ securityContext: { seccompProfilePath: "runtime/default" } }),
    [],
  );
});

Deno.test("addLocalhostSeccomp() adds a Localhost profile read from the node, and only that", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const profile = `{"defaultAction":"SCMP_ACT_ALLOW"}`;
    await Deno.writeTextFile(`${dir}/p.json`, profile);
    const create = { Image: "pause", HostConfig: { SecurityOpt: ["no-new-privileges"] } };
    await addLocalhostSeccomp(create, {
      seccomp: { profileType: "Localhost", localhostRef: `${dir}/p.json` },
    });
    assert.deepEqual(create.HostConfig.SecurityOpt, ["no-new-privileges", `seccomp=${profile}`]);

    const untouched = { Image: "pause", HostConfig: {} };
    await addLocalhostSeccomp(untouched, { seccomp: { profileType: "RuntimeDefault" } });
    assert.deepEqual(untouched.HostConfig, {});

    for (const path of ["relative.json", `${dir}/missing.json`]) {
      const err = await addLocalhostSeccomp(untouched, {
        seccomp: { profileType: "Localhost", localhostRef: path },
      }).catch((err) => err);
      assert(isInvalidArgument(err));
      assert.match(err.message, /seccomp profile/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
