/**
 * Container confinement, end to end: real busybox containers under a real daemon try what a
 * default container must not do (mount, load modules, reach host devices, write /proc/sys,
 * create user namespaces) and what `--privileged`, `--cap-add`, `seccomp=unconfined` and a
 * custom profile change.
 */
import assert from "node:assert/strict";
import { type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";

/** Runs `sh -c script` in a new busybox container; answers its output (both streams) and code. */
async function sh(
  daemon: TestDaemon,
  script: string,
  flags: string[] = [],
): Promise<{ code: number; out: string }> {
  const result = await daemon.pouch(["run", "--rm", ...flags, "busybox", "sh", "-c", script]);
  return { code: result.code, out: result.stdout + result.stderr };
}

/** The filter mode of the container's pid 1: 0 none, 2 a seccomp filter. */
async function seccompMode(daemon: TestDaemon, flags: string[] = []): Promise<string> {
  const { out } = await sh(daemon, "grep ^Seccomp: /proc/self/status", flags);
  return out.trim().split(/\s+/)[1] ?? "";
}

const MOUNT = "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo MOUNTED";

Deno.test("a default container is confined; privileged, cap-add and unconfined lift it", async () => {
  await withBusyboxDaemon(async (daemon) => {
    // The filter is there unless privileged or unconfined.
    assert.equal(await seccompMode(daemon), "2");
    assert.equal(await seccompMode(daemon, ["--security-opt", "seccomp=unconfined"]), "0");
    assert.equal(await seccompMode(daemon, ["--privileged"]), "0");

    // mount: refused to root in a default container, allowed with CAP_SYS_ADMIN (the profile
    // opens mount for that capability) and to a privileged one.
    const refused = await sh(daemon, MOUNT);
    assert.notEqual(refused.code, 0, refused.out);
    assert.match(refused.out, /permission denied|not permitted/i);
    assert.doesNotMatch(refused.out, /MOUNTED/);
    assert.match((await sh(daemon, MOUNT, ["--cap-add", "SYS_ADMIN"])).out, /MOUNTED/);
    assert.match((await sh(daemon, MOUNT, ["--privileged"])).out, /MOUNTED/);

    // Kernel modules: init_module is refused before the kernel even reads the module.
    const insmod = await sh(daemon, "echo junk > /tmp/m.ko && insmod /tmp/m.ko");
    assert.notEqual(insmod.code, 0);
    assert.match(insmod.out, /Operation not permitted/, insmod.out);

    // A user namespace: unshare is CAP_SYS_ADMIN's in the profile, so EPERM by default; with
    // seccomp=unconfined the kernel alone decides, and it lets anyone create one.
    const unshare = await sh(daemon, "unshare -U true && echo UNSHARED");
    assert.doesNotMatch(unshare.out, /UNSHARED/);
    assert.match(unshare.out, /Operation not permitted/, unshare.out);
    const unconfined = await sh(daemon, "unshare -U true && echo UNSHARED", [
      "--security-opt",
      "seccomp=unconfined",
    ]);
    assert.match(unconfined.out, /UNSHARED/);
    // ... but unconfined seccomp still leaves the capabilities: no mount.
    assert.doesNotMatch(
      (await sh(daemon, MOUNT, ["--security-opt", "seccomp=unconfined"])).out,
      /MOUNTED/,
    );

    // no-new-privileges reaches the process.
    const nnp = await sh(daemon, "grep ^NoNewPrivs: /proc/self/status", [
      "--security-opt",
      "no-new-privileges",
    ]);
    assert.match(nnp.out, /NoNewPrivs:\s+1/);
    assert.match((await sh(daemon, "grep ^NoNewPrivs: /proc/self/status")).out, /NoNewPrivs:\s+0/);
  });
});

Deno.test("a default container sees no host device and cannot write /proc/sys or /sys", async () => {
  await withBusyboxDaemon(async (daemon) => {
    // /dev holds only runc's defaults.
    const dev = await sh(daemon, "ls /dev");
    assert.equal(dev.code, 0, dev.out);
    const entries = dev.out.split(/\s+/).filter(Boolean).sort();
    const allowed = [
      "console",
      "core",
      "fd",
      "full",
      "mqueue",
      "null",
      "ptmx",
      "pts",
      "random",
      "shm",
      "stderr",
      "stdin",
      "stdout",
      "tty",
      "urandom",
      "zero",
    ];
    for (const entry of entries) assert.ok(allowed.includes(entry), `unexpected /dev/${entry}`);
    assert.doesNotMatch(dev.out, /\b(sd[a-z]|vd[a-z]|nvme|xvd|loop|mem|kmsg)/);

    // Making the host's first disk's node is allowed (CAP_MKNOD), opening it is not: the devices
    // cgroup denies every block device.
    const disk = await sh(
      daemon,
      "set -- $(awk 'NR>2 {print $1, $2; exit}' /proc/partitions); " +
        'mknod /tmp/disk b "$1" "$2" && head -c 1 /tmp/disk >/dev/null && echo READ',
    );
    assert.doesNotMatch(disk.out, /READ/);
    assert.match(disk.out, /Operation not permitted/, disk.out);
    // A privileged container gets the host's nodes.
    const privileged = await sh(daemon, "ls /dev", ["--privileged"]);
    assert.ok(privileged.out.split(/\s+/).length > entries.length, privileged.out);

    // /proc/sys and /sys are read-only; /proc/kcore is masked.
    const sysctl = await sh(daemon, "echo 1 > /proc/sys/kernel/panic && echo WROTE");
    assert.doesNotMatch(sysctl.out, /WROTE/);
    assert.match(sysctl.out, /Read-only file system/, sysctl.out);
    const sys = await sh(daemon, "mkdir /sys/fs/pouch-test && echo WROTE");
    assert.doesNotMatch(sys.out, /WROTE/);
    assert.match(sys.out, /Read-only file system/, sys.out);
    // The masked /proc files this kernel has read as empty.
    const masked = await sh(
      daemon,
      "for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do " +
        '[ -e "$p" ] && echo "$p $(head -c 4096 "$p" | wc -c)"; done; true',
    );
    const sizes = masked.out.trim().split("\n").filter(Boolean);
    assert.ok(sizes.length > 0, masked.out);
    for (const line of sizes) assert.match(line, / 0$/, line);
  });
});

Deno.test("a custom seccomp profile from a file replaces the default one", async () => {
  await withBusyboxDaemon(async (daemon) => {
    const profile = `${daemon.dir}/no-mkdir.json`;
    await Deno.writeTextFile(
      profile,
      JSON.stringify(
        {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }],
        },
        null,
        2,
      ),
    );
    const flags = ["--security-opt", `seccomp=${profile}`];
    const blocked = await sh(daemon, "touch /made && mkdir /newdir && echo MADE", flags);
    assert.doesNotMatch(blocked.out, /MADE/);
    assert.match(blocked.out, /Operation not permitted/, blocked.out);
    assert.match((await sh(daemon, "mkdir /newdir && echo MADE")).out, /MADE/);

    // The daemon refuses a broken profile before creating anything.
    const broken = await daemon.api("POST", "/containers/create", {
      Image: "busybox",
      HostConfig: { SecurityOpt: ["seccomp={broken"] },
    });
    assert.equal(broken.status, 400, broken.body);
    assert.match(broken.body, /Decoding seccomp profile failed/);
    const list = await daemon.api("GET", "/containers/json?all=1");
    assert.deepEqual(JSON.parse(list.body), []);
  });
});
