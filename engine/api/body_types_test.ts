import assert from "node:assert/strict";
import { isInvalidArgument, messageOf } from "../errors.ts";
import { checkGoType, checkJsonDepth, CREATE_BODY, EXEC_BODY, UPDATE_BODY } from "./body_types.ts";

function refused(body: unknown, type = CREATE_BODY): string {
  try {
    checkGoType(body, type, "Config");
  } catch (err) {
    assert.ok(isInvalidArgument(err), messageOf(err));
    return messageOf(err);
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

Deno.test("checkGoType() refuses wrong JSON types with Go's message", () => {
  assert.equal(
    refused({ Tty: "yes" }),
    "json: cannot unmarshal string into Go struct field Config.Tty of type bool",
  );
  assert.equal(
    refused({ HostConfig: { Memory: 1.5 } }),
    "json: cannot unmarshal number 1.5 into Go struct field Config.HostConfig.Memory of type int64",
  );
  assert.match(refused({ HostConfig: { Memory: 1e300 } }), /number 1e\+300/);
  assert.match(
    refused({ Env: ["A=1", 2] }),
    /number into Go struct field Config.Env of type \[\]string/,
  );
  assert.match(refused({ Labels: { a: 1 } }), /Config.Labels of type map\[string\]string/);
  assert.match(refused({ Cmd: 5 }), /Config.Cmd/);
  assert.match(refused({ HostConfig: { Ulimits: [{ Name: 1 }] } }), /HostConfig.Ulimits.Name/);
  assert.match(
    refused({ HostConfig: { PortBindings: { "80/tcp": [{ HostPort: 80 }] } } }),
    /HostPort/,
  );
  assert.match(refused({ HostConfig: [] }), /array into Go struct field Config.HostConfig/);
  assert.match(
    refused({ NetworkingConfig: { EndpointsConfig: { net: { Aliases: "a" } } } }),
    /Aliases/,
  );
  assert.match(refused({ Memory: "1g" }, UPDATE_BODY), /Memory/);
  assert.match(refused({ Privileged: 1 }, EXEC_BODY), /Privileged/);
});

Deno.test("checkGoType() accepts nulls, unknown fields and Docker's StrSlice strings", () => {
  const body = {
    Image: "busybox",
    Cmd: "echo hi",
    Entrypoint: null,
    Env: null,
    Unknown: { anything: [1, "x"] },
    HostConfig: { Memory: 6291456, Binds: null, Sysctls: { "net.ipv4.ip_forward": "1" } },
    ExposedPorts: { "80/tcp": {} },
  };
  const checked = checkGoType(body, CREATE_BODY, "Config") as typeof body;
  assert.deepEqual(checked.Cmd, ["echo hi"]);
  assert.equal(checked.Entrypoint, null);
  assert.deepEqual(checked.Unknown, { anything: [1, "x"] });
  // An inherited name is not a field.
  assert.doesNotThrow(() => checkGoType({ constructor: 5, toString: [] }, CREATE_BODY, "Config"));
});

Deno.test("checkJsonDepth() refuses bodies nesting deeper than 100 levels, strings aside", () => {
  checkJsonDepth("[".repeat(100) + "]".repeat(100));
  checkJsonDepth(`{"a":"${"[{".repeat(5000)}"}`);
  checkJsonDepth(`{"a":"\\\"[[[["}`);
  for (const text of ["[".repeat(101), '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000)]) {
    assert.throws(
      () => checkJsonDepth(text),
      (err: unknown) => isInvalidArgument(err) && /deeper than 100/.test(messageOf(err)),
    );
  }
});
