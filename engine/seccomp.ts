/**
 * Seccomp: Docker's default profile and the conversion of a profile in Docker's format into the
 * OCI `linux.seccomp` of one container.
 *
 * The default profile has the same effect as moby's `profiles/seccomp/default.json`: every
 * system call not listed fails with EPERM; an allow list of ordinary calls; `personality` only
 * with the values programs use; `socket` for every family but AF_VSOCK; and the calls that a
 * capability guards (mount, unshare, setns, module loading, ptrace, reboot, clock setting, ...)
 * allowed only when the container holds that capability, so `--cap-add SYS_ADMIN` also opens
 * `mount`. Without CAP_SYS_ADMIN, `clone` may not create namespaces and `clone3` answers ENOSYS
 * (its flags live in memory that seccomp cannot inspect, and ENOSYS makes libc fall back to
 * `clone`). Calls that no capability opens, such as the keyring (`add_key`, `keyctl`,
 * `request_key`), `kexec_load` or `userfaultfd`, always fail.
 *
 * {@link seccompFor} follows moby's `setupSeccomp`: a rule's `includes` must all hold (each
 * capability in the bounding set, the architecture, the kernel at least `minKernel`) and none
 * of its `excludes` may, and `archMap` gives the native architecture with its sub-architectures
 * (x86_64 with x86 and x32), so 32-bit calls are filtered too instead of being a way around.
 *
 * @module
 */

import { invalidArgument } from "./errors.ts";

/** Conditions of a rule in Docker's profile format (`includes`, `excludes`). */
export interface SeccompFilter {
  /** Capabilities (`CAP_SYS_ADMIN`). */
  caps?: string[];
  /** Go architecture names (`amd64`, `arm64`, `x86`, `x32`, ...). */
  arches?: string[];
  /** A kernel version, `4.8`. */
  minKernel?: string;
}

/** A condition on a system call argument (OCI `linux.seccomp.syscalls[].args[]`). */
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

/** A rule in Docker's profile format. */
export interface SeccompRule {
  /** One name: Docker's older form of `names`. */
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  comment?: string;
  includes?: SeccompFilter;
  excludes?: SeccompFilter;
}

/** A seccomp profile in Docker's format (what `--security-opt seccomp=FILE` holds). */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  /** OCI's form: the architectures themselves. Either this or `archMap`. */
  architectures?: string[];
  /** Docker's form: for each native architecture, the sub-architectures to filter as well. */
  archMap?: Array<{ architecture: string; subArchitectures?: string[] | null }>;
  syscalls?: SeccompRule[] | null;
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
}

/** One OCI seccomp rule (`linux.seccomp.syscalls[]`). */
export interface OciSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** The OCI `linux.seccomp` object that runc loads. */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls: OciSyscall[];
}

/** Options of {@link seccompFor}. */
export interface SeccompForOptions {
  /** Go's name of the host architecture; defaults to this process's (`amd64`, `arm64`). */
  arch?: string;
  /** The kernel release, `6.1.0-18-amd64`; defaults to this host's. */
  kernel?: string;
}

// ---------------------------------------------------------------------------------------------
// The default profile.

const EPERM = 1;
const ENOSYS = 38;

/** Calls every container may make: no capability guards them, or the kernel checks it. */
const ALLOWED: readonly string[] = [
  "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32",
  "clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64",
  "clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup",
  "dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2",
  "epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat",
  "faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown",
  "fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr",
  "fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex",
  "futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32",
  "geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid",
  "getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32",
  "getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid",
  "gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1",
  "inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64",
  "ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc",
  "kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32",
  "lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat",
  "lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat",
  "mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive",
  "mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget",
  "msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat",
  "_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc",
  "pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64",
  "process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink",
  "readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr",
  "rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending",
  "rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait",
  "rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam",
  "sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval",
  "sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam",
  "sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop",
  "semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32",
  "setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority",
  "setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32",
  "setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32",
  "setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask",
  "sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat",
  "sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete",
  "timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create",
  "timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate",
  "truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes",
  "vfork vmsplice wait4 waitid waitpid write writev",
].join(" ").split(" ");

/** Calls opened by one capability each (the kernel checks the capability as well). */
const BY_CAPABILITY: ReadonlyArray<readonly [string, string]> = [
  ["CAP_DAC_READ_SEARCH", "open_by_handle_at"],
  [
    "CAP_SYS_ADMIN",
    "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount " +
    "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname " +
    "sethostname setns syslog umount umount2 unshare",
  ],
  ["CAP_SYS_BOOT", "reboot"],
  ["CAP_SYS_CHROOT", "chroot"],
  ["CAP_SYS_MODULE", "delete_module init_module finit_module"],
  ["CAP_SYS_PACCT", "acct"],
  ["CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"],
  ["CAP_SYS_RAWIO", "iopl ioperm"],
  ["CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"],
  ["CAP_SYS_TTY_CONFIG", "vhangup"],
  ["CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"],
  ["CAP_SYSLOG", "syslog"],
  ["CAP_BPF", "bpf"],
  ["CAP_PERFMON", "perf_event_open"],
];

/** Calls only some architectures have. */
const BY_ARCH: ReadonlyArray<readonly [string[], string]> = [
  [["ppc64le"], "sync_file_range2 swapcontext"],
  [
    ["arm", "arm64"],
    "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
  ],
  [["amd64", "x32"], "arch_prctl"],
  [["amd64", "x32", "x86"], "modify_ldt"],
  [["s390", "s390x"], "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"],
  [["riscv64"], "riscv_flush_icache"],
];

/**
 * The `personality` values allowed: PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and
 * 0xffffffff, which only queries the current persona.
 */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** The clone flags that create namespaces: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** AF_VSOCK: the host's hypervisor sockets stay out of reach. */
const AF_VSOCK = 40;

function names(list: string): string[] {
  return list.split(" ");
}

/** Builds Docker's default profile (a fresh copy each time: callers may change it). */
function buildDefaultProfile(): SeccompProfile {
  const allow = "SCMP_ACT_ALLOW";
  const syscalls: SeccompRule[] = [
    { names: [...ALLOWED], action: allow },
    // Before 4.8 seccomp could be bypassed with ptrace, so these need CAP_SYS_PTRACE there.
    {
      names: names("process_vm_readv process_vm_writev ptrace"),
      action: allow,
      includes: { minKernel: "4.8" },
    },
    {
      names: ["socket"],
      action: allow,
      args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }],
    },
    ...PERSONALITIES.map((value): SeccompRule => ({
      names: ["personality"],
      action: allow,
      args: [{ index: 0, value, op: "SCMP_CMP_EQ" }],
    })),
    ...BY_ARCH.map(([arches, list]): SeccompRule => ({
      names: names(list),
      action: allow,
      includes: { arches: [...arches] },
    })),
    ...BY_CAPABILITY.slice(0, 2).map(capabilityRule),
    {
      names: ["clone"],
      action: allow,
      args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: "SCMP_CMP_MASKED_EQ" }],
      excludes: { caps: ["CAP_SYS_ADMIN"], arches: ["s390", "s390x"] },
    },
    {
      // s390 passes the flags as the second argument.
      names: ["clone"],
      action: allow,
      args: [{ index: 1, value: CLONE_NAMESPACE_FLAGS, op: "SCMP_CMP_MASKED_EQ" }],
      includes: { arches: ["s390", "s390x"] },
      excludes: { caps: ["CAP_SYS_ADMIN"] },
    },
    {
      names: ["clone3"],
      action: "SCMP_ACT_ERRNO",
      errnoRet: ENOSYS,
      excludes: { caps: ["CAP_SYS_ADMIN"] },
    },
    ...BY_CAPABILITY.slice(2).map(capabilityRule),
  ];
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: EPERM,
    archMap: [
      { architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] },
      { architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"] },
      { architecture: "SCMP_ARCH_S390X", subArchitectures: ["SCMP_ARCH_S390"] },
      { architecture: "SCMP_ARCH_RISCV64", subArchitectures: null },
    ],
    syscalls,
  };
}

function capabilityRule([cap, list]: readonly [string, string]): SeccompRule {
  return { names: names(list), action: "SCMP_ACT_ALLOW", includes: { caps: [cap] } };
}

/** Docker's default seccomp profile, in Docker's format (see the module's doc). */
export function defaultSeccompProfile(): SeccompProfile {
  return buildDefaultProfile();
}

// ---------------------------------------------------------------------------------------------
// Parsing a user's profile.

const ACTIONS = new Set([
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
  "SCMP_ACT_NOTIFY",
]);

const OPERATORS = new Set([
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
]);

/**
 * Reads a profile in Docker's format (the JSON that `--security-opt seccomp=FILE` sends) and
 * checks it, so that a bad profile is a 400 at create rather than a failed start: actions and
 * operators runc knows, `name` or `names` (not both), `architectures` or `archMap` (not both),
 * argument values JavaScript holds exactly.
 *
 * @throws InvalidArgument with moby's messages where moby has one.
 */
export function parseSeccompProfile(text: string): SeccompProfile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`Decoding seccomp profile failed: ${(err as Error).message}`, err);
  }
  const bad = (what: string) => invalidArgument(`Decoding seccomp profile failed: ${what}`);
  if (!isObject(value)) throw bad("the profile is not a JSON object");
  const profile = value as Record<string, unknown>;
  if (typeof profile.defaultAction !== "string" || !ACTIONS.has(profile.defaultAction)) {
    throw bad(`invalid defaultAction ${JSON.stringify(profile.defaultAction)}`);
  }
  checkErrno(profile.defaultErrnoRet, "defaultErrnoRet", bad);
  checkStrings(profile.architectures, "architectures", bad);
  checkStrings(profile.flags, "flags", bad);
  if (profile.archMap !== undefined && profile.archMap !== null) {
    if (!Array.isArray(profile.archMap)) throw bad("archMap must be a list");
    for (const entry of profile.archMap) {
      if (!isObject(entry) || typeof entry.architecture !== "string") {
        throw bad("archMap entries need an architecture");
      }
      checkStrings(entry.subArchitectures, "subArchitectures", bad);
    }
  }
  if (isNonEmpty(profile.architectures) && isNonEmpty(profile.archMap)) {
    throw invalidArgument(
      "'architectures' and 'archMap' were specified in the seccomp profile, use either " +
        "'architectures' or 'archMap'",
    );
  }
  for (const key of ["listenerPath", "listenerMetadata"]) {
    if (profile[key] !== undefined && typeof profile[key] !== "string") {
      throw bad(`${key} must be a string`);
    }
  }
  if (profile.syscalls !== undefined && profile.syscalls !== null) {
    if (!Array.isArray(profile.syscalls)) throw bad("syscalls must be a list");
    for (const rule of profile.syscalls) checkRule(rule, bad);
  }
  return profile as unknown as SeccompProfile;
}

function checkRule(rule: unknown, bad: (what: string) => Error): void {
  if (!isObject(rule)) throw bad("every syscalls entry must be an object");
  if (rule.name !== undefined && typeof rule.name !== "string") throw bad("name must be a string");
  checkStrings(rule.names, "names", bad);
  if (rule.name && isNonEmpty(rule.names)) {
    throw invalidArgument(
      "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'",
    );
  }
  if (typeof rule.action !== "string" || !ACTIONS.has(rule.action)) {
    throw bad(`invalid action ${JSON.stringify(rule.action)}`);
  }
  checkErrno(rule.errnoRet, "errnoRet", bad);
  if (rule.args !== undefined && rule.args !== null) {
    if (!Array.isArray(rule.args)) throw bad("args must be a list");
    for (const arg of rule.args) {
      if (!isObject(arg)) throw bad("every args entry must be an object");
      if (!Number.isInteger(arg.index) || (arg.index as number) < 0 || (arg.index as number) > 5) {
        throw bad(`invalid argument index ${JSON.stringify(arg.index)}`);
      }
      for (const key of ["value", "valueTwo"]) {
        const v = arg[key];
        if (v === undefined && key === "valueTwo") continue;
        if (!Number.isSafeInteger(v) || (v as number) < 0) {
          throw bad(`argument ${key} must be an integer from 0 to 2^53-1`);
        }
      }
      if (typeof arg.op !== "string" || !OPERATORS.has(arg.op)) {
        throw bad(`invalid operator ${JSON.stringify(arg.op)}`);
      }
    }
  }
  for (const key of ["includes", "excludes"]) {
    const filter = rule[key];
    if (filter === undefined || filter === null) continue;
    if (!isObject(filter)) throw bad(`${key} must be an object`);
    checkStrings(filter.caps, `${key}.caps`, bad);
    checkStrings(filter.arches, `${key}.arches`, bad);
    if (filter.minKernel !== undefined && !isKernelVersion(filter.minKernel)) {
      throw bad(`invalid ${key}.minKernel ${JSON.stringify(filter.minKernel)}`);
    }
  }
}

function checkErrno(value: unknown, key: string, bad: (what: string) => Error): void {
  if (value === undefined || value === null) return;
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 4095) {
    throw bad(`${key} must be an errno number`);
  }
}

function checkStrings(value: unknown, key: string, bad: (what: string) => Error): void {
  if (value === undefined || value === null) return;
  if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) {
    throw bad(`${key} must be a list of strings`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonEmpty(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

function isKernelVersion(value: unknown): value is string {
  return typeof value === "string" && /^\d+\.\d+$/.test(value);
}

// ---------------------------------------------------------------------------------------------
// Profile -> OCI.

/** Deno's architecture names to Go's, which profiles use. */
const GO_ARCH: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };

/** Go's architecture names to libseccomp's, for `archMap`. */
const NATIVE_ARCH: Record<string, string> = {
  amd64: "SCMP_ARCH_X86_64",
  arm64: "SCMP_ARCH_AARCH64",
  s390x: "SCMP_ARCH_S390X",
  riscv64: "SCMP_ARCH_RISCV64",
};

/**
 * The OCI `linux.seccomp` of a container holding `capabilities` (its bounding set) under
 * `profile`, as moby's `setupSeccomp` builds it (see the module's doc).
 */
export function seccompFor(
  profile: SeccompProfile,
  capabilities: readonly string[],
  options: SeccompForOptions = {},
): OciSeccomp {
  const arch = options.arch ?? GO_ARCH[Deno.build.arch] ?? Deno.build.arch;
  const kernel = kernelVersion(options.kernel ?? Deno.osRelease());
  const atLeast = (min: string) => compareVersions(kernel, kernelVersion(min)) >= 0;
  const caps = new Set(capabilities);

  const syscalls: OciSyscall[] = [];
  const result = { defaultAction: profile.defaultAction } as OciSeccomp;
  if (profile.defaultErrnoRet !== undefined && profile.defaultErrnoRet !== null) {
    result.defaultErrnoRet = profile.defaultErrnoRet;
  }
  if (isNonEmpty(profile.architectures)) {
    result.architectures = [...profile.architectures!];
  } else if (profile.archMap) {
    const native = NATIVE_ARCH[arch];
    for (const entry of profile.archMap) {
      if (entry.architecture !== native) continue;
      result.architectures = [entry.architecture, ...(entry.subArchitectures ?? [])];
    }
  }
  if (profile.flags?.length) result.flags = [...profile.flags];
  if (profile.listenerPath) result.listenerPath = profile.listenerPath;
  if (profile.listenerMetadata) result.listenerMetadata = profile.listenerMetadata;

  for (const rule of profile.syscalls ?? []) {
    const excludes = rule.excludes;
    if (excludes) {
      if (excludes.arches?.includes(arch)) continue;
      if (excludes.caps?.some((cap) => caps.has(cap))) continue;
      if (excludes.minKernel && atLeast(excludes.minKernel)) continue;
    }
    const includes = rule.includes;
    if (includes) {
      if (includes.arches?.length && !includes.arches.includes(arch)) continue;
      if (includes.caps?.some((cap) => !caps.has(cap))) continue;
      if (includes.minKernel && !atLeast(includes.minKernel)) continue;
    }
    const call: OciSyscall = {
      names: rule.name ? [rule.name] : [...(rule.names ?? [])],
      action: rule.action,
    };
    if (rule.errnoRet !== undefined && rule.errnoRet !== null) call.errnoRet = rule.errnoRet;
    if (rule.args?.length) call.args = rule.args.map((arg) => ({ ...arg }));
    syscalls.push(call);
  }
  result.syscalls = syscalls;
  return result;
}

/** `6.1.0-18-amd64` -> [6, 1]. */
function kernelVersion(release: string): number[] {
  const match = /^(\d+)\.(\d+)/.exec(release);
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}
