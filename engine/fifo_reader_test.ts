import assert from "node:assert/strict";
import { readFifo } from "./fifo_reader.ts";

Deno.test("readFifo() holds reading back while a handler's promise is pending", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-fifo-" });
  const path = `${dir}/out`;
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(made.success);
  try {
    let received = 0;
    let duringPause = 0;
    let paused = true;
    const release = Promise.withResolvers<void>();
    let first = true;
    const reading = readFifo(path, (chunk) => {
      received += chunk.length;
      if (!paused) return;
      if (first) {
        first = false;
        return release.promise;
      }
      duringPause += chunk.length;
    });
    // 4 MB from another process: a pipe holds 64 KB, so the writer blocks during the pause.
    const writer = new Deno.Command("sh", {
      args: ["-c", `head -c ${4 << 20} /dev/zero > ${path}`],
    }).spawn();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const beforeRelease = received;
    assert.equal(duringPause, 0, "no data is read while paused");
    assert.ok(beforeRelease <= 64 * 1024, `read ${beforeRelease} bytes before the release`);
    paused = false;
    release.resolve();
    assert.ok((await writer.status).success);
    await reading;
    assert.equal(received, 4 << 20);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
