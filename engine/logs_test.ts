import assert from "node:assert/strict";
import { frame, JsonFileLog, parseLogText, readLogs, utf8 } from "./logs.ts";

Deno.test("JsonFileLog writes one entry per line and joins partial lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = new JsonFileLog(`${dir}/json.log`);
    log.write("stdout", utf8("hel"));
    log.write("stderr", utf8("oops\n"));
    log.write("stdout", utf8("lo\nwor"));
    await log.close();
    const entries = parseLogText(await Deno.readTextFile(`${dir}/json.log`));
    assert.deepEqual(entries.map((e) => [e.stream, e.log]), [
      ["stderr", "oops\n"],
      ["stdout", "hello\n"],
      ["stdout", "wor"],
    ]);
    assert.match(entries[0]!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseLogText() filters by stream, time and tail, and skips a torn last line", () => {
  const text = [
    { log: "a\n", stream: "stdout", time: "2026-01-01T00:00:01.000000000Z" },
    { log: "b\n", stream: "stderr", time: "2026-01-01T00:00:02.000000000Z" },
    { log: "c\n", stream: "stdout", time: "2026-01-01T00:00:03.000000000Z" },
  ].map((e) => JSON.stringify(e)).join("\n") + '\n{"log":"tor';
  assert.deepEqual(parseLogText(text).map((e) => e.log), ["a\n", "b\n", "c\n"]);
  assert.deepEqual(parseLogText(text, { stderr: false }).map((e) => e.log), ["a\n", "c\n"]);
  assert.deepEqual(parseLogText(text, { tail: 1 }).map((e) => e.log), ["c\n"]);
  assert.deepEqual(parseLogText(text, { tail: 0 }), []);
  const since = Date.parse("2026-01-01T00:00:02Z") / 1000;
  assert.deepEqual(parseLogText(text, { since }).map((e) => e.log), ["b\n", "c\n"]);
  assert.deepEqual(parseLogText(text, { until: since }).map((e) => e.log), ["a\n"]);
});

Deno.test("readLogs() with follow returns entries written later and ends when stopped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/json.log`;
    const log = new JsonFileLog(path);
    log.write("stdout", utf8("first\n"));
    await log.flush();
    let stopped = false;
    const seen: string[] = [];
    const reading = (async () => {
      for await (const entry of readLogs(path, { follow: true, stopped: () => stopped })) {
        seen.push(entry.log);
      }
    })();
    log.write("stdout", utf8("second\n"));
    await log.close();
    stopped = true;
    await reading;
    assert.deepEqual(seen, ["first\n", "second\n"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("frame() writes Docker's 8-byte multiplexing header", () => {
  assert.deepEqual([...frame(2, utf8("hi"))], [2, 0, 0, 0, 0, 0, 0, 2, 104, 105]);
});

Deno.test("JsonFileLog rotates by max-size into json.log.1 ... and readLogs() reads across them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/json.log`;
    // Each entry is 78 bytes: two fit in 200, the third rotates.
    const log = new JsonFileLog(path, { maxSize: 200, maxFiles: 3 });
    for (let i = 0; i < 9; i++) log.write("stdout", utf8(`line ${i}\n`));
    await log.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["json.log", "json.log.1", "json.log.2"]);
    for (const name of names) assert.ok(Deno.statSync(`${dir}/${name}`).size <= 200);
    const all = [];
    for await (const entry of readLogs(path)) all.push(entry.log);
    // Files of two entries: [4, 5] [6, 7] [8] are kept; the older ones were dropped.
    assert.deepEqual(all, [4, 5, 6, 7, 8].map((i) => `line ${i}\n`));
    const tail = [];
    for await (const entry of readLogs(path, { tail: 3 })) tail.push(entry.log);
    assert.deepEqual(tail, ["line 6\n", "line 7\n", "line 8\n"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JsonFileLog with max-file 1 truncates the live file in place", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/json.log`;
    const log = new JsonFileLog(path, { maxSize: 150 });
    for (let i = 0; i < 5; i++) log.write("stdout", utf8(`line ${i}\n`));
    await log.close();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["json.log"]);
    const all = [];
    for await (const entry of readLogs(path)) all.push(entry.log);
    assert.deepEqual(all, ["line 4\n"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readLogs() with follow keeps reading across rotations", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/json.log`;
    const log = new JsonFileLog(path, { maxSize: 150, maxFiles: 4 });
    log.write("stdout", utf8("line 0\n"));
    await log.flush();
    let stopped = false;
    const seen: string[] = [];
    const reading = (async () => {
      for await (const entry of readLogs(path, { follow: true, stopped: () => stopped })) {
        seen.push(entry.log);
      }
    })();
    for (let i = 1; i < 6; i++) {
      log.write("stdout", utf8(`line ${i}\n`));
      await log.flush();
      // Lets the follower catch up between rotations, as a slower writer would.
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await log.close();
    stopped = true;
    await reading;
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5].map((i) => `line ${i}\n`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
