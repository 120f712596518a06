import assert from "node:assert/strict";
import { CriFileLog, criLogLine, parseCriLog } from "./cri_log.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("criLogLine() renders the kubelet's format with nanoseconds", () => {
  const line = criLogLine("stdout", encoder.encode("hello"), {
    partial: false,
    time: new Date("2016-10-06T00:17:09.669Z"),
  });
  assert.equal(decoder.decode(line), "2016-10-06T00:17:09.669000000Z stdout F hello\n");
  const piece = criLogLine("stderr", encoder.encode("x"), { partial: true });
  assert.match(decoder.decode(piece), /^\S+Z stderr P x\n$/);
});

Deno.test("CriFileLog writes lines per stream, joins split lines, and reopens after rotation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-crilog-" });
  try {
    const path = `${dir}/pod/c/0.log`;
    const log = new CriFileLog(path);
    // The file exists before any output.
    await log.flush();
    assert.equal(await Deno.readTextFile(path), "");
    log.write("stdout", encoder.encode("one\ntw"));
    log.write("stderr", encoder.encode("err\n"));
    log.write("stdout", encoder.encode("o\n"));
    await log.flush();
    assert.deepEqual(
      parseCriLog(await Deno.readTextFile(path)).map((e) => [e.stream, e.partial, e.text]),
      [["stdout", false, "one"], ["stderr", false, "err"], ["stdout", false, "two"]],
    );
    // The kubelet renames the file, then asks for a reopen: new output goes to a new file.
    await Deno.rename(path, `${path}.1`);
    await log.reopen();
    log.write("stdout", encoder.encode("three"));
    await log.close();
    assert.deepEqual(parseCriLog(await Deno.readTextFile(path)).map((e) => e.text), ["three"]);
    assert.equal(parseCriLog(await Deno.readTextFile(`${path}.1`)).length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CriFileLog cuts a line longer than 16 KiB into P pieces ended by an F", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-crilog-" });
  try {
    const log = new CriFileLog(`${dir}/0.log`);
    log.write("stdout", encoder.encode("a".repeat(20 * 1024)));
    log.write("stdout", encoder.encode("b\n"));
    await log.close();
    const entries = parseCriLog(await Deno.readTextFile(`${dir}/0.log`));
    assert.deepEqual(entries.map((e) => e.partial), [true, false]);
    assert.equal(entries.map((e) => e.text).join(""), "a".repeat(20 * 1024) + "b");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
