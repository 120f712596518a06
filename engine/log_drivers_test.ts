import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { isInvalidArgument, isUnavailable, messageOf } from "./errors.ts";
import {
  canReadLogs,
  logPathOf,
  openLogDriver,
  resolveLogConfig,
  syslogMessage,
} from "./log_drivers.ts";
import { UnixDatagramSocket } from "./_unix_dgram.ts";
import { waitFor } from "./testing.ts";

const target = { dir: "/tmp/none", id: "ab".repeat(32), name: "web", image: "busybox" };
const utf8 = (text: string) => new TextEncoder().encode(text);

Deno.test("resolveLogConfig() takes the daemon's type and merges its options of that type", () => {
  const defaults = { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } };
  assert.deepEqual(resolveLogConfig(undefined, defaults), defaults);
  assert.deepEqual(
    resolveLogConfig({ Type: "", Config: { "max-file": "5" } }, defaults),
    { Type: "json-file", Config: { "max-size": "10m", "max-file": "5" } },
  );
  // Another driver does not inherit json-file's options.
  assert.deepEqual(resolveLogConfig({ Type: "none" }, defaults), { Type: "none", Config: {} });
});

Deno.test("resolveLogConfig() refuses unknown drivers, options and bad values", () => {
  const defaults = { Type: "json-file" };
  const refused = (config: { Type: string; Config?: Record<string, string> }, text: RegExp) =>
    assert.throws(() => resolveLogConfig(config, defaults), (err) => {
      assert.ok(isInvalidArgument(err), messageOf(err));
      assert.match(messageOf(err), text);
      return true;
    });
  refused({ Type: "fluentd" }, /no log driver named 'fluentd' is registered/);
  refused({ Type: "json-file", Config: { "max-bytes": "1" } }, /unknown log opt 'max-bytes'/);
  refused({ Type: "json-file", Config: { "max-size": "ten" } }, /invalid max-size/);
  refused({ Type: "json-file", Config: { "max-file": "3" } }, /only be set when max-size/);
  refused({ Type: "json-file", Config: { "max-file": "0", "max-size": "1m" } }, /less than 1/);
  refused({ Type: "json-file", Config: { compress: "true" } }, /compress is not supported/);
  refused({ Type: "none", Config: { tag: "x" } }, /unknown log opt 'tag' for none/);
  refused({ Type: "syslog", Config: { "syslog-address": "http://x" } }, /syslog-address/);
  refused({ Type: "syslog", Config: { "syslog-facility": "nope" } }, /facility/);
  refused({ Type: "syslog", Config: { "syslog-format": "json" } }, /unknown syslog format/);
  refused({ Type: "syslog", Config: { tag: "{{.Nope}}" } }, /no field Nope/);
});

Deno.test("logPathOf() and canReadLogs(): only json-file keeps a readable file", () => {
  assert.equal(logPathOf({ Type: "json-file" }, "/c"), "/c/json.log");
  assert.equal(logPathOf({ Type: "none" }, "/c"), "");
  assert.equal(canReadLogs({ Type: "syslog" }), false);
  assert.equal(canReadLogs(undefined), true);
});

Deno.test("syslogMessage() renders RFC 3164 and RFC 5424 as Docker's driver does", () => {
  const time = new Date(2026, 10, 3, 4, 5, 6, 789);
  const entry = { stream: "stderr" as const, text: "boom", time, hostname: "h", pid: 42 };
  assert.equal(
    syslogMessage({ facility: 3, format: "rfc3164", tag: "web" }, entry),
    "<27>Nov  3 04:05:06 h web[42]: boom",
  );
  assert.equal(
    syslogMessage({ facility: 16, format: "rfc5424", tag: "web" }, { ...entry, stream: "stdout" }),
    `<134>1 ${time.toISOString().replace(/\.\d+Z$/, "Z")} h web 42 web - boom`,
  );
});

Deno.test("the syslog driver sends a message a line to a unix datagram socket", async () => {
  const dir = await Deno.makeTempDir();
  const receiver = UnixDatagramSocket.bind(`${dir}/log`);
  try {
    const log = await openLogDriver({
      Type: "syslog",
      Config: { "syslog-address": `unixgram://${dir}/log`, tag: "{{.Name}}/{{.ID}}" },
    }, target);
    log.write("stdout", utf8("hello\nwor"));
    log.write("stderr", utf8("oops\n"));
    log.write("stdout", utf8("ld\n"));
    await log.close();
    const got: string[] = [];
    for (let datagram = receiver.receive(); datagram; datagram = receiver.receive()) {
      got.push(new TextDecoder().decode(datagram));
    }
    assert.equal(got.length, 3, got.join("\n"));
    assert.match(got[0]!, /^<30>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ web\/abababababab\[\d+\]: hello$/);
    assert.match(got[1]!, /^<27>.* web\/abababababab\[\d+\]: oops$/);
    assert.match(got[2]!, /: world$/);
  } finally {
    receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the syslog driver fails to open when nothing listens", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      openLogDriver({ Type: "syslog", Config: { "syslog-address": `unix://${dir}/x` } }, target),
      (err) => isUnavailable(err) && /failed to initialize logging driver/.test(messageOf(err)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the syslog driver sends RFC 5424 over udp and newline-framed over tcp", async () => {
  const udp = createSocket("udp4");
  const datagrams: string[] = [];
  udp.on("message", (message) => datagrams.push(message.toString()));
  await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const udpLog = await openLogDriver({
      Type: "syslog",
      Config: {
        "syslog-address": `udp://127.0.0.1:${udp.address().port}`,
        "syslog-format": "rfc5424",
        "syslog-facility": "local0",
      },
    }, target);
    udpLog.write("stdout", utf8("one\n"));
    await udpLog.close();
    await waitFor(() => datagrams.length === 1, { timeoutMs: 5000 });
    assert.match(datagrams[0]!, /^<134>1 \S+Z \S+ abababababab \d+ abababababab - one$/);

    const accepted = listener.accept();
    const tcpLog = await openLogDriver({
      Type: "syslog",
      Config: { "syslog-address": `tcp://127.0.0.1:${listener.addr.port}` },
    }, target);
    tcpLog.write("stdout", utf8("a\nb\n"));
    await tcpLog.close();
    const conn = await accepted;
    const text = new TextDecoder().decode(
      await new Response(conn.readable).arrayBuffer(),
    );
    assert.deepEqual(text.split("\n").map((line) => line.replace(/^.*: /, "")), ["a", "b", ""]);
  } finally {
    udp.close();
    listener.close();
  }
});
