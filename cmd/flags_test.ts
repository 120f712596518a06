import assert from "node:assert/strict";
import {
  cidrContains,
  parseCidr,
  parseEnvFile,
  parseFlags,
  parseIp,
  parseLabelFile,
  parseLabels,
  parseNanoCpus,
  parseUlimit,
  ramInBytes,
  UsageError,
} from "./flags.ts";
import type { FlagSpec } from "./flags.ts";

const specs: FlagSpec[] = [
  { name: "interactive", short: "i", kind: "bool", description: "" },
  { name: "tty", short: "t", kind: "bool", description: "" },
  { name: "memory", short: "m", kind: "string", description: "" },
  { name: "env", short: "e", kind: "list", description: "" },
  { name: "network", aliases: ["net"], kind: "string", description: "" },
  { name: "rm", kind: "bool", description: "" },
  { name: "cpus", kind: "string", description: "" },
];

Deno.test("parseFlags() combines short booleans and reads attached values", () => {
  const parsed = parseFlags(["-it", "-m512m", "-e", "A=1", "--env=B=2", "busybox"], specs);
  assert.deepEqual(parsed.values.get("interactive"), true);
  assert.deepEqual(parsed.values.get("tty"), true);
  assert.deepEqual(parsed.values.get("memory"), "512m");
  assert.deepEqual(parsed.values.get("env"), ["A=1", "B=2"]);
  assert.deepEqual(parsed.args, ["busybox"]);
});

Deno.test("parseFlags() stops at the first argument when not interspersed", () => {
  const parsed = parseFlags(["--rm", "busybox", "sh", "-c", "echo -i"], specs, {
    interspersed: false,
  });
  assert.deepEqual(parsed.values.get("rm"), true);
  assert.deepEqual(parsed.args, ["busybox", "sh", "-c", "echo -i"]);
});

Deno.test("parseFlags() keeps parsing after arguments when interspersed", () => {
  const parsed = parseFlags(["a", "--rm", "b", "--", "-t"], specs);
  assert.deepEqual(parsed.args, ["a", "b", "-t"]);
  assert.deepEqual(parsed.values.get("rm"), true);
  assert.deepEqual(parsed.values.has("tty"), false);
});

Deno.test("parseFlags() takes aliases, --bool=false, a lone dash and negative values", () => {
  const parsed = parseFlags(["--net", "host", "--rm=false", "--cpus", "-1", "-"], specs);
  assert.deepEqual(parsed.values.get("network"), "host");
  assert.deepEqual(parsed.values.get("rm"), false);
  assert.deepEqual(parsed.values.get("cpus"), "-1");
  assert.deepEqual(parsed.args, ["-"]);
});

Deno.test("parseFlags() rejects unknown flags and missing values as pflag words them", () => {
  assert.throws(
    () => parseFlags(["--x"], specs),
    (e) => e instanceof UsageError && e.message === "unknown flag: --x",
  );
  assert.throws(
    () => parseFlags(["-z"], specs),
    (e) => e instanceof UsageError && e.message === "unknown shorthand flag: 'z' in -z",
  );
  assert.throws(
    () => parseFlags(["--memory"], specs),
    (e) => e instanceof UsageError && e.message === "flag needs an argument: --memory",
  );
});

Deno.test("ramInBytes() reads Docker's binary units", () => {
  assert.deepEqual(ramInBytes("512"), 512);
  assert.deepEqual(ramInBytes("512b"), 512);
  assert.deepEqual(ramInBytes("64k"), 64 * 1024);
  assert.deepEqual(ramInBytes("100m"), 100 * 1024 * 1024);
  assert.deepEqual(ramInBytes("100M"), 100 * 1024 * 1024);
  assert.deepEqual(ramInBytes("1.5g"), 1.5 * 1024 ** 3);
  assert.deepEqual(ramInBytes("2GiB"), 2 * 1024 ** 3);
  assert.deepEqual(ramInBytes("1 GB"), 1024 ** 3);
  for (const bad of ["abc", "-1", "1x", "", "m"]) {
    assert.throws(
      () => ramInBytes(bad),
      (e) => e instanceof Error && e.message.includes("invalid size"),
    );
  }
});

Deno.test("parseNanoCpus() turns CPUs into NanoCpus and refuses negatives", () => {
  assert.deepEqual(parseNanoCpus("1"), 1e9);
  assert.deepEqual(parseNanoCpus("1.5"), 1.5e9);
  assert.deepEqual(parseNanoCpus("0.01"), 1e7);
  assert.throws(() => parseNanoCpus("-1"));
  assert.throws(() => parseNanoCpus("abc"));
  assert.throws(
    () => parseNanoCpus("0.0000000001"),
    (e) => e instanceof Error && e.message.includes("too precise"),
  );
});

Deno.test("parseUlimit() reads soft and hard limits", () => {
  assert.deepEqual(parseUlimit("nofile=1024:2048"), { Name: "nofile", Soft: 1024, Hard: 2048 });
  assert.deepEqual(parseUlimit("nproc=100"), { Name: "nproc", Soft: 100, Hard: 100 });
  assert.throws(() => parseUlimit("nofile=3:2"));
  assert.throws(() => parseUlimit("nofile"));
});

Deno.test("parseEnvFile() skips comments, keeps values and looks up bare keys", () => {
  const content = "# comment\n\nA=1\nHOME\nUNSET\nC=x=y\r\n  D=indented\n";
  const env = parseEnvFile(content, { lookup: (k) => (k === "HOME" ? "/root" : undefined) });
  assert.deepEqual(env, ["A=1", "HOME=/root", "C=x=y", "D=indented"]);
  assert.throws(() => parseEnvFile("B C=1", { lookup: () => undefined }), /whitespaces/);
});

Deno.test("parseLabels() and parseLabelFile() read k=v lines, bare keys empty", () => {
  const lines = parseLabelFile("# c\na=1\n\nb\nc=x=y\n");
  assert.deepEqual(lines, ["a=1", "b", "c=x=y"]);
  assert.deepEqual(parseLabels(lines), { a: "1", b: "", c: "x=y" });
});

Deno.test("parseIp() and parseCidr() read IPv4 and IPv6 forms; cidrContains() checks them", () => {
  assert.deepEqual(parseIp("10.1.2.3"), { value: 0x0a010203n, bits: 32 });
  assert.deepEqual(parseIp("::1"), { value: 1n, bits: 128 });
  assert.deepEqual(parseIp("::ffff:1.2.3.4"), { value: 0xffff01020304n, bits: 128 });
  assert.equal(parseIp("fd00:0:0:0:0:0:0:1")?.value, parseIp("fd00::1")?.value);
  for (const bad of ["10.1.2", "256.1.1.1", "1::2::3", "1:2:3:4:5:6:7:8:9", "fd00::g", "x"]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
  const net = parseCidr("10.1.0.0/16")!;
  assert.equal(net.prefix, 16);
  assert.ok(cidrContains(net, parseIp("10.1.255.1")!));
  assert.ok(!cidrContains(net, parseIp("10.2.0.1")!));
  assert.ok(!cidrContains(net, parseIp("::1")!));
  assert.ok(cidrContains(parseCidr("fd00::/64")!, parseIp("fd00::5")!));
  assert.equal(parseCidr("10.1.0.0/33"), undefined);
  assert.equal(parseCidr("10.1.0.0"), undefined);
});
