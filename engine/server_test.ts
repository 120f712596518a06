import assert from "node:assert/strict";
import { endlessStream, groupId } from "./server.ts";

Deno.test("endlessStream() picks the requests a shutdown does not wait for", () => {
  assert.equal(endlessStream("GET", "/v1.41/events?since=1"), true);
  assert.equal(endlessStream("GET", "/containers/web/logs?follow=1&stdout=1"), true);
  assert.equal(endlessStream("GET", "/containers/web/logs?stdout=1"), false);
  assert.equal(endlessStream("GET", "/containers/web/stats"), true);
  assert.equal(endlessStream("GET", "/containers/web/stats?stream=false"), false);
  assert.equal(endlessStream("POST", "/containers/web/wait"), false);
  assert.equal(endlessStream("POST", "/containers/web/stop?t=3"), false);
});

Deno.test("groupId() reads /etc/group and takes numeric ids as they are", async () => {
  assert.equal(await groupId("root"), 0);
  assert.equal(await groupId("1234"), 1234);
  assert.equal(await groupId("pouch-no-such-group"), undefined);
});
