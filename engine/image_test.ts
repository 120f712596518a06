import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { isInvalidArgument, messageOf } from "./errors.ts";
import { chainIds, parseChanges, parsePlatform, splitWords } from "./image.ts";
import type { ImageRunConfig } from "./types.ts";

const changeCases: Array<[string, string[], ImageRunConfig]> = [
  ["CMD in JSON form", ['CMD ["sh", "-c", "echo hi"]'], { Cmd: ["sh", "-c", "echo hi"] }],
  ["CMD in shell form", ["CMD echo hi"], { Cmd: ["/bin/sh", "-c", "echo hi"] }],
  ["CMD with broken JSON is shell form", ["CMD [oops"], { Cmd: ["/bin/sh", "-c", "[oops"] }],
  ["ENTRYPOINT", ['ENTRYPOINT ["/init"]'], { Entrypoint: ["/init"] }],
  ["lower-case instruction", ["cmd top"], { Cmd: ["/bin/sh", "-c", "top"] }],
  [
    "ENV pairs with quotes",
    ['ENV A=1 B="two words" C=x\\ y'],
    { Env: ["A=1", "B=two words", "C=x y"] },
  ],
  ["ENV legacy form", ["ENV GREETING hello world"], { Env: ["GREETING=hello world"] }],
  ["ENV replaces an earlier value", ["ENV A=1", "ENV A=2"], { Env: ["A=2"] }],
  ["WORKDIR absolute", ["WORKDIR /srv"], { WorkingDir: "/srv" }],
  ["WORKDIR relative to the previous", ["WORKDIR /srv", "WORKDIR app"], {
    WorkingDir: "/srv/app",
  }],
  ["USER", ["USER 1000:1000"], { User: "1000:1000" }],
  ["LABEL", ['LABEL a=b "c d"=e'], { Labels: { a: "b", "c d": "e" } }],
  ["EXPOSE", ["EXPOSE 80 53/udp 8000-8001"], {
    ExposedPorts: { "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {} },
  }],
  ["VOLUME", ['VOLUME ["/data", "/logs"]'], { Volumes: { "/data": {}, "/logs": {} } }],
  ["STOPSIGNAL", ["STOPSIGNAL SIGINT"], { StopSignal: "SIGINT" }],
  ["several lines in one change", ["ENV A=1\nUSER app"], { Env: ["A=1"], User: "app" }],
];

for (const [name, changes, expected] of changeCases) {
  Deno.test(`parseChanges() applies ${name}`, () => {
    assert.deepEqual(parseChanges(changes), expected);
  });
}

Deno.test("parseChanges() leaves the base config unchanged", () => {
  const base: ImageRunConfig = { Env: ["A=1"] };
  assert.deepEqual(parseChanges(["ENV B=2"], base), { Env: ["A=1", "B=2"] });
  assert.deepEqual(base, { Env: ["A=1"] });
});

const badChanges: Array<[string, string]> = [
  ["RUN echo hi", "RUN is not a valid change command"],
  ["FROM busybox", "FROM is not a valid change command"],
  ["ENV", "ENV requires at least one argument"],
  ["ENV A", "ENV names A without a value"],
  ["EXPOSE 99999", "invalid containerPort: 99999"],
  ["EXPOSE http", "invalid containerPort: http"],
  ["USER", "USER requires exactly one argument"],
  ['LABEL a="unterminated', 'unterminated quote in "a=\\"unterminated"'],
];

for (const [change, message] of badChanges) {
  Deno.test(`parseChanges() refuses ${JSON.stringify(change)}`, () => {
    let caught: unknown;
    try {
      parseChanges([change]);
    } catch (err) {
      caught = err;
    }
    assert.ok(isInvalidArgument(caught), String(caught));
    assert.equal(messageOf(caught), message);
  });
}

Deno.test("splitWords() honours quotes and backslashes", () => {
  assert.deepEqual(splitWords(` a 'b c' "d \\" e" f\\ g  `), ["a", "b c", 'd " e', "f g"]);
  assert.deepEqual(splitWords(""), []);
  assert.deepEqual(splitWords('""'), [""]);
});

Deno.test("chainIds() chains diff IDs as containerd does", () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  const hash = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;
  const second = hash(`${d("a")} ${d("b")}`);
  assert.deepEqual(chainIds([]), []);
  assert.deepEqual(chainIds([d("a")]), [d("a")]);
  assert.deepEqual(chainIds([d("a"), d("b"), d("c")]), [
    d("a"),
    second,
    hash(`${second} ${d("c")}`),
  ]);
});

Deno.test("parsePlatform() parses os/arch[/variant]", () => {
  assert.deepEqual(parsePlatform("linux/amd64"), { os: "linux", architecture: "amd64" });
  assert.deepEqual(parsePlatform("Linux/ARM64/v8"), {
    os: "linux",
    architecture: "arm64",
    variant: "v8",
  });
  assert.throws(() => parsePlatform("linux"), (err: unknown) => isInvalidArgument(err));
});
