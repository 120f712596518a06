import assert from "node:assert/strict";
import { sockaddr } from "./_unix_dgram.ts";
import { NotifyListener, sdNotify } from "./notify.ts";

Deno.test("sdNotify() delivers states to a socket path", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-notify-" });
  const listener = new NotifyListener(`${dir}/notify.sock`);
  try {
    assert.equal(sdNotify("READY=1\nSTATUS=serving", { socket: listener.path }), true);
    assert.equal(sdNotify("STOPPING=1", { socket: listener.path }), true);
    assert.deepEqual(listener.drain(), ["READY=1\nSTATUS=serving", "STOPPING=1"]);
    assert.deepEqual(listener.drain(), []);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sdNotify() reaches abstract sockets named with @", () => {
  const name = `@pouch-notify-test-${crypto.randomUUID()}`;
  const listener = new NotifyListener(name);
  try {
    assert.equal(sdNotify("READY=1", { socket: name }), true);
    assert.deepEqual(listener.drain(), ["READY=1"]);
  } finally {
    listener.close();
  }
});

Deno.test("sdNotify() is a no-op without NOTIFY_SOCKET and fails when nobody listens", () => {
  const saved = Deno.env.get("NOTIFY_SOCKET");
  Deno.env.delete("NOTIFY_SOCKET");
  try {
    assert.equal(sdNotify("READY=1"), false);
  } finally {
    if (saved !== undefined) Deno.env.set("NOTIFY_SOCKET", saved);
  }
  assert.throws(() => sdNotify("READY=1", { socket: "/nonexistent/notify.sock" }));
});

Deno.test("sockaddr() encodes abstract names with a leading NUL and no terminator", () => {
  const address = sockaddr("@abc");
  assert.deepEqual([...address], [1, 0, 0, 0x61, 0x62, 0x63]);
  assert.equal(address.length, 2 + 4);
  assert.equal(sockaddr("/a").length, 2 + 2 + 1);
});
