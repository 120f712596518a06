import assert from "node:assert/strict";
import { renderTemplate, TemplateError } from "./template.ts";

const data = {
  Id: "abc",
  Name: "/web",
  State: { Status: "running", Running: true, ExitCode: 0, Pid: 42 },
  Config: { Labels: { "com.x": "1", b: "2" }, Env: ["A=1", "B=2"], Cmd: null },
};

Deno.test("renderTemplate() reads field paths", () => {
  assert.equal(renderTemplate("{{.State.Status}}", data), "running");
  assert.equal(renderTemplate("{{.Id}} {{.Name}}", data), "abc /web");
  assert.equal(renderTemplate("{{.State.ExitCode}} {{.State.Running}}", data), "0 true");
  assert.equal(renderTemplate("{{.Nope}}", data), "<no value>");
  assert.equal(renderTemplate("{{.Config.Cmd}}", data), "<nil>");
  assert.equal(renderTemplate("{{.Config.Env}}", data), "[A=1 B=2]");
  assert.equal(renderTemplate("{{.Config.Labels}}", data), "map[b:2 com.x:1]");
});

Deno.test("renderTemplate() has json, index, join and pipelines", () => {
  assert.equal(renderTemplate("{{json .State}}", data), JSON.stringify(data.State));
  assert.equal(renderTemplate("{{json .Config.Cmd}}", data), "null");
  assert.equal(renderTemplate('{{index .Config.Labels "com.x"}}', data), "1");
  assert.equal(renderTemplate('{{join .Config.Env ","}}', data), "A=1,B=2");
  assert.equal(renderTemplate("{{.State.Status | upper}}", data), "RUNNING");
  assert.equal(renderTemplate('{{printf "%s-%d" .Id .State.Pid}}', data), "abc-42");
  assert.equal(renderTemplate("{{len .Config.Env}}", data), "2");
  assert.equal(renderTemplate("{{json .}}", { a: 1 }), '{"a":1}');
});

Deno.test("renderTemplate() has if/else, range and variables", () => {
  assert.equal(renderTemplate("{{if .State.Running}}up{{else}}down{{end}}", data), "up");
  assert.equal(
    renderTemplate(
      '{{if eq .State.Status "exited"}}x{{else if .State.Running}}r{{else}}z{{end}}',
      data,
    ),
    "r",
  );
  assert.equal(renderTemplate("{{range .Config.Env}}[{{.}}]{{end}}", data), "[A=1][B=2]");
  assert.equal(
    renderTemplate("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", data),
    "b=2;com.x=1;",
  );
  assert.equal(renderTemplate("{{range .Config.Cmd}}x{{else}}empty{{end}}", data), "empty");
  assert.equal(renderTemplate("{{range .Config.Env}}{{$.Id}}{{end}}", data), "abcabc");
  assert.equal(renderTemplate("a {{- .Id -}} b", data), "aabcb");
});

Deno.test("renderTemplate() reports malformed templates", () => {
  assert.throws(() => renderTemplate("{{.Id", data), TemplateError);
  assert.throws(() => renderTemplate("{{if .Id}}x", data), TemplateError);
  assert.throws(() => renderTemplate("{{nope .Id}}", data), /function "nope" not defined/);
  assert.throws(() => renderTemplate("{{end}}", data), TemplateError);
});
