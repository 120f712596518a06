import assert from "node:assert/strict";
import { isInvalidArgument, messageOf } from "./errors.ts";
import {
  defaultSeccompProfile,
  type OciSeccomp,
  parseSeccompProfile,
  seccompFor,
  type SeccompForOptions,
} from "./seccomp.ts";
import { buildSpec, DEFAULT_CAPABILITIES, type SpecInput, validateHostConfig } from "./spec.ts";
import type { HostConfig } from "./types.ts";

const HOST: SeccompForOptions = { arch: "amd64", kernel: "6.1.0-18-amd64" };

/** The calls a filter lets through whatever their arguments. */
function unconditional(seccomp: OciSeccomp): Set<string> {
  return new Set(
    seccomp.syscalls.filter((rule) => rule.action === "SCMP_ACT_ALLOW" && !rule.args)
      .flatMap((rule) => rule.names),
  );
}

/** The rules naming `name`. */
function rulesOf(seccomp: OciSeccomp, name: string) {
  return seccomp.syscalls.filter((rule) => rule.names.includes(name));
}

Deno.test("seccompFor() denies by default with EPERM on x86_64, x86 and x32", () => {
  const seccomp = seccompFor(defaultSeccompProfile(), DEFAULT_CAPABILITIES, HOST);
  assert.equal(seccomp.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(seccomp.defaultErrnoRet, 1);
  assert.deepEqual(seccomp.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  const arm = seccompFor(defaultSeccompProfile(), DEFAULT_CAPABILITIES, { ...HOST, arch: "arm64" });
  assert.deepEqual(arm.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  assert.ok(unconditional(seccomp).has("arch_prctl"), "amd64 has arch_prctl");
  assert.ok(!unconditional(arm).has("arch_prctl"), "arm64 has no arch_prctl");
  assert.ok(unconditional(arm).has("set_tls"));
});

Deno.test("seccompFor() blocks Docker's dangerous calls for default capabilities", () => {
  const allowed = unconditional(seccompFor(defaultSeccompProfile(), DEFAULT_CAPABILITIES, HOST));
  for (const name of ["read", "write", "openat", "execve", "mkdir", "socketpair", "chroot"]) {
    assert.ok(allowed.has(name), `${name} allowed`);
  }
  const blocked = [
    "mount",
    "umount2",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "add_key",
    "keyctl",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "settimeofday",
    "clock_settime",
    "acct",
    "iopl",
    "ioperm",
    "open_by_handle_at",
    "perf_event_open",
    "syslog",
    "userfaultfd",
    "swapon",
    "pivot_root",
    "kcmp",
    "process_madvise",
    "mbind",
    "vhangup",
  ];
  for (const name of blocked) assert.ok(!allowed.has(name), `${name} blocked`);
  // Since 4.8 seccomp cannot be bypassed with ptrace, so Docker allows it there.
  assert.ok(allowed.has("ptrace"));
  const old = seccompFor(defaultSeccompProfile(), DEFAULT_CAPABILITIES, {
    ...HOST,
    kernel: "4.4.0",
  });
  assert.ok(!unconditional(old).has("ptrace"), "no ptrace before 4.8 without CAP_SYS_PTRACE");
});

Deno.test("seccompFor() limits clone, clone3, socket and personality without CAP_SYS_ADMIN", () => {
  const seccomp = seccompFor(defaultSeccompProfile(), DEFAULT_CAPABILITIES, HOST);
  assert.deepEqual(rulesOf(seccomp, "clone"), [{
    names: ["clone"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value: 0x7e020000, op: "SCMP_CMP_MASKED_EQ" }],
  }]);
  assert.deepEqual(rulesOf(seccomp, "clone3"), [
    { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
  ]);
  assert.deepEqual(rulesOf(seccomp, "socket")[0]?.args, [
    { index: 0, value: 40, op: "SCMP_CMP_NE" },
  ]);
  assert.deepEqual(
    rulesOf(seccomp, "personality").map((rule) => rule.args?.[0]?.value),
    [0, 8, 0x20000, 0x20008, 0xffffffff],
  );
});

Deno.test("seccompFor() opens the calls of each capability the container holds", () => {
  const caps = [...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_TIME"];
  const seccomp = seccompFor(defaultSeccompProfile(), caps, HOST);
  const allowed = unconditional(seccomp);
  for (const name of ["mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf"]) {
    assert.ok(allowed.has(name), `${name} with CAP_SYS_ADMIN`);
  }
  for (const name of ["init_module", "finit_module", "settimeofday", "clock_settime"]) {
    assert.ok(allowed.has(name), `${name} with its capability`);
  }
  // The namespace-less clone and ENOSYS clone3 rules are for containers without CAP_SYS_ADMIN.
  assert.equal(rulesOf(seccomp, "clone").length, 1);
  assert.equal(rulesOf(seccomp, "clone3").length, 1);
  for (const name of ["reboot", "kexec_load", "add_key", "keyctl"]) {
    assert.ok(!allowed.has(name), `${name} still blocked`);
  }
  const dropped = seccompFor(
    defaultSeccompProfile(),
    DEFAULT_CAPABILITIES.filter((cap) => cap !== "CAP_SYS_CHROOT"),
    HOST,
  );
  assert.ok(!unconditional(dropped).has("chroot"), "--cap-drop SYS_CHROOT also drops chroot");
});

Deno.test("seccompFor() reads Docker's name, errnoRet and legacy architectures", () => {
  const profile = parseSeccompProfile(JSON.stringify({
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [
      { name: "mkdir", action: "SCMP_ACT_ERRNO", errnoRet: 13 },
      { names: ["chmod"], action: "SCMP_ACT_ERRNO", excludes: { minKernel: "5.0" } },
      { names: ["chown"], action: "SCMP_ACT_ERRNO", includes: { caps: ["CAP_SYS_ADMIN"] } },
    ],
  }));
  assert.deepEqual(seccompFor(profile, DEFAULT_CAPABILITIES, HOST), {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
  });
});

Deno.test("parseSeccompProfile() refuses bad profiles with a clear message", () => {
  const cases: Array<[string, string]> = [
    ["{", "Decoding seccomp profile failed"],
    ["[]", "not a JSON object"],
    ['{"defaultAction":"SCMP_ACT_MAYBE"}', "invalid defaultAction"],
    ['{"defaultAction":"SCMP_ACT_ERRNO","syscalls":{}}', "syscalls must be a list"],
    [
      '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}',
      "'name' and 'names' were specified",
    ],
    [
      '{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86"}]}',
      "'architectures' and 'archMap' were specified",
    ],
    [
      '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]}',
      "integer from 0",
    ],
    [
      '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}]}]}',
      "invalid argument index",
    ],
    [
      '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"EQ"}]}]}',
      "invalid operator",
    ],
    [
      '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":[1],"action":"SCMP_ACT_ALLOW"}]}',
      "names must be a list of strings",
    ],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseSeccompProfile(text), (err: unknown) => {
      assert.ok(isInvalidArgument(err), `${text}: ${messageOf(err)}`);
      assert.ok(messageOf(err).includes(message), `${text}: ${messageOf(err)}`);
      return true;
    });
  }
});

// --- the spec step ---------------------------------------------------------------------------

const ID = "0123456789abcdef".repeat(4);

function specOf(hostConfig: HostConfig) {
  const input: SpecInput = {
    id: ID,
    config: { Cmd: ["sh"] },
    hostConfig,
    image: {},
    user: { uid: 0, gid: 0, additionalGids: [0] },
    files: { hosts: "/h", hostname: "/n", resolvConf: "/r" },
    cgroupsPath: `/pouch/${ID}`,
    hostHostname: "buildhost",
  };
  return buildSpec(input, { cpuCount: 4 });
}

Deno.test("buildSpec() applies the default profile unless privileged or unconfined", () => {
  const confined = specOf({}).linux.seccomp;
  assert.ok(confined);
  assert.ok(!unconditional(confined).has("mount"));
  assert.deepEqual(specOf({ SecurityOpt: ["seccomp=builtin"] }).linux.seccomp, confined);
  assert.equal(specOf({ Privileged: true }).linux.seccomp, undefined);
  assert.equal(specOf({ SecurityOpt: ["seccomp=unconfined"] }).linux.seccomp, undefined);
  assert.equal(specOf({ SecurityOpt: ["seccomp:unconfined"] }).linux.seccomp, undefined);
  // The capabilities decide: --cap-add SYS_ADMIN opens mount.
  const admin = specOf({ CapAdd: ["SYS_ADMIN"] }).linux.seccomp;
  assert.ok(admin && unconditional(admin).has("mount"));
});

Deno.test("buildSpec() uses a profile's JSON sent as seccomp=... and checks it", () => {
  const profile = {
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }],
  };
  const seccomp = specOf({ SecurityOpt: [`seccomp=${JSON.stringify(profile)}`] }).linux.seccomp;
  assert.deepEqual(seccomp, {
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }],
  });
  // Privileged wins over a profile, as in Docker.
  assert.equal(
    specOf({ Privileged: true, SecurityOpt: [`seccomp=${JSON.stringify(profile)}`] }).linux.seccomp,
    undefined,
  );
  assert.throws(
    () => validateHostConfig({ SecurityOpt: ["seccomp={not json"] }),
    (err: unknown) =>
      isInvalidArgument(err) && /Decoding seccomp profile failed/.test(messageOf(err)),
  );
});
