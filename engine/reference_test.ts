import assert from "node:assert/strict";
import { isInvalidArgument, messageOf } from "./errors.ts";
import {
  familiarName,
  normalizeReference,
  parseReference,
  type Reference,
  repositoryOf,
} from "./reference.ts";

const digest = `sha256:${"a".repeat(64)}`;

const valid: Array<[string, Reference, string, string]> = [
  // input, parsed, normalised, familiar
  [
    "busybox",
    { domain: "docker.io", path: "library/busybox" },
    "docker.io/library/busybox:latest",
    "busybox:latest",
  ],
  [
    "busybox:1.36",
    { domain: "docker.io", path: "library/busybox", tag: "1.36" },
    "docker.io/library/busybox:1.36",
    "busybox:1.36",
  ],
  [
    "foo/bar:1",
    { domain: "docker.io", path: "foo/bar", tag: "1" },
    "docker.io/foo/bar:1",
    "foo/bar:1",
  ],
  [
    "docker.io/library/busybox:latest",
    { domain: "docker.io", path: "library/busybox", tag: "latest" },
    "docker.io/library/busybox:latest",
    "busybox:latest",
  ],
  [
    "index.docker.io/library/busybox",
    { domain: "docker.io", path: "library/busybox" },
    "docker.io/library/busybox:latest",
    "busybox:latest",
  ],
  [
    "docker.io/library/a/b",
    { domain: "docker.io", path: "library/a/b" },
    "docker.io/library/a/b:latest",
    "library/a/b:latest",
  ],
  [
    `localhost:5000/x@${digest}`,
    { domain: "localhost:5000", path: "x", digest },
    `localhost:5000/x@${digest}`,
    `localhost:5000/x@${digest}`,
  ],
  [
    "xn--bcher-kva.example:5000/team/app:2",
    { domain: "xn--bcher-kva.example:5000", path: "team/app", tag: "2" },
    "xn--bcher-kva.example:5000/team/app:2",
    "xn--bcher-kva.example:5000/team/app:2",
  ],
  [
    "localhost/x",
    { domain: "localhost", path: "x" },
    "localhost/x:latest",
    "localhost/x:latest",
  ],
  [
    "127.0.0.1:5000/busybox:latest",
    { domain: "127.0.0.1:5000", path: "busybox", tag: "latest" },
    "127.0.0.1:5000/busybox:latest",
    "127.0.0.1:5000/busybox:latest",
  ],
  [
    `busybox:1@${digest}`,
    { domain: "docker.io", path: "library/busybox", tag: "1", digest },
    `docker.io/library/busybox:1@${digest}`,
    `busybox:1@${digest}`,
  ],
  [
    "[::1]:5000/a/b-c__d.e:v_1.0-rc",
    { domain: "[::1]:5000", path: "a/b-c__d.e", tag: "v_1.0-rc" },
    "[::1]:5000/a/b-c__d.e:v_1.0-rc",
    "[::1]:5000/a/b-c__d.e:v_1.0-rc",
  ],
  [
    "Registry.Example.com/app",
    { domain: "Registry.Example.com", path: "app" },
    "Registry.Example.com/app:latest",
    "Registry.Example.com/app:latest",
  ],
];

for (const [input, parsed, normalised, familiar] of valid) {
  Deno.test(`parseReference() normalises ${input}`, () => {
    assert.deepEqual(parseReference(input), parsed);
    assert.equal(normalizeReference(input), normalised);
    assert.equal(familiarName(normalised), familiar);
  });
}

const invalid: Array<[string, string]> = [
  ["", "invalid reference format"],
  // An internationalised host must be given in its punycode (ASCII) form.
  ["bücher.example/foo", "invalid reference format"],
  ["Busybox", "invalid reference format: repository name must be lowercase"],
  ["foo/Bar:1", "invalid reference format: repository name must be lowercase"],
  ["busybox:", "invalid reference format"],
  ["busybox:tag with space", "invalid reference format"],
  [":latest", "invalid reference format"],
  ["busybox@sha256:abc", "invalid reference format"],
  [`busybox@sha256:${"a".repeat(40)}`, "invalid checksum digest length"],
  ["-busybox", "invalid reference format"],
  ["busybox_", "invalid reference format"],
  ["a//b", "invalid reference format"],
  [`busybox:${"t".repeat(129)}`, "invalid reference format"],
  [
    "a".repeat(64),
    `invalid repository name (${"a".repeat(64)}), cannot specify 64-byte hexadecimal strings`,
  ],
  [
    `x/${"a".repeat(260)}`,
    "invalid reference format: repository name must not be more than 255 characters",
  ],
];

for (const [input, message] of invalid) {
  Deno.test(`parseReference() refuses ${JSON.stringify(input.slice(0, 40))}`, () => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (err) {
      caught = err;
    }
    assert.ok(isInvalidArgument(caught), `expected an InvalidArgument error, got ${caught}`);
    assert.equal(messageOf(caught), message);
  });
}

Deno.test("repositoryOf() drops tag and digest", () => {
  assert.equal(repositoryOf(parseReference(`busybox:1@${digest}`)), "docker.io/library/busybox");
});
