/**
 * A small subset of Go's text/template, enough for Docker's `--format` flags:
 * field paths (`{{.State.Status}}`, `{{.}}`), pipelines (`{{.Name | upper}}`), parentheses,
 * string/number/bool literals, variables (`$`, `$k`), `{{if}}`/`{{else}}`/`{{end}}`,
 * `{{range}}` (with `$i, $v :=`), trim markers (`{{-`, `-}}`), and the functions Docker adds
 * (`json`, `join`, `split`, `lower`, `upper`, `title`, `pad`, `truncate`) plus Go's `index`,
 * `len`, `print`, `printf`, `println`, `eq`, `ne`, `not`, `and`, `or`.
 *
 * Values print as Go's `%v` would print the decoded JSON: missing fields as `<no value>`,
 * null as `<nil>`, arrays as `[a b]`, objects as `map[k:v]`.
 *
 * @module
 */

/** A template could not be parsed or executed. */
export class TemplateError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(`template: ${message}`);
    this.name = "TemplateError";
  }
}

type Token =
  | { kind: "field"; path: string[] }
  | { kind: "var"; name: string; path: string[] }
  | { kind: "string"; value: string }
  | { kind: "number"; value: number }
  | { kind: "ident"; name: string }
  | { kind: "pipe" | "lparen" | "rparen" | "comma" | "declare" };

type Operand =
  | { kind: "field"; path: string[] }
  | { kind: "var"; name: string; path: string[] }
  | { kind: "literal"; value: unknown }
  | { kind: "call"; name: string; args: Operand[] }
  | { kind: "pipeline"; pipeline: Pipeline };

type Pipeline = Operand[]; // each stage's result is passed as the last argument of the next

type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pipeline: Pipeline }
  | { kind: "if"; pipeline: Pipeline; then: Node[]; else: Node[] }
  | { kind: "range"; pipeline: Pipeline; vars: string[]; body: Node[]; else: Node[] };

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const pathAt = (start: number): [string[], number] => {
    const path: string[] = [];
    let j = start;
    while (src[j] === ".") {
      const m = /^[A-Za-z0-9_]*/.exec(src.slice(j + 1))!;
      if (m[0] === "") {
        j++;
        break;
      }
      path.push(m[0]);
      j += 1 + m[0].length;
    }
    return [path, j];
  };
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "|") {
      tokens.push({ kind: "pipe" });
      i++;
    } else if (c === "(") {
      tokens.push({ kind: "lparen" });
      i++;
    } else if (c === ")") {
      tokens.push({ kind: "rparen" });
      i++;
    } else if (c === ",") {
      tokens.push({ kind: "comma" });
      i++;
    } else if (src.startsWith(":=", i)) {
      tokens.push({ kind: "declare" });
      i += 2;
    } else if (c === ".") {
      const [path, next] = pathAt(i);
      tokens.push({ kind: "field", path });
      i = next;
    } else if (c === "$") {
      const m = /^\$[A-Za-z0-9_]*/.exec(src.slice(i))!;
      const [path, next] = pathAt(i + m[0].length);
      tokens.push({ kind: "var", name: m[0], path });
      i = next;
    } else if (c === '"') {
      const m = /^"(?:[^"\\]|\\.)*"/.exec(src.slice(i));
      if (!m) throw new TemplateError(`unterminated quoted string in ${JSON.stringify(src)}`);
      tokens.push({ kind: "string", value: JSON.parse(m[0]) });
      i += m[0].length;
    } else if (c === "`") {
      const end = src.indexOf("`", i + 1);
      if (end < 0) throw new TemplateError(`unterminated raw string in ${JSON.stringify(src)}`);
      tokens.push({ kind: "string", value: src.slice(i + 1, end) });
      i = end + 1;
    } else if (/[-0-9]/.test(c)) {
      const m = /^-?\d+(\.\d+)?/.exec(src.slice(i));
      if (!m) throw new TemplateError(`bad number in ${JSON.stringify(src)}`);
      tokens.push({ kind: "number", value: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      tokens.push({ kind: "ident", name: m[0] });
      i += m[0].length;
    } else {
      throw new TemplateError(`unexpected ${JSON.stringify(c)} in action ${JSON.stringify(src)}`);
    }
  }
  return tokens;
}

class PipelineParser {
  #tokens: Token[];
  #pos = 0;

  constructor(tokens: Token[]) {
    this.#tokens = tokens;
  }

  parseAll(): Pipeline {
    const p = this.pipeline();
    if (this.#pos < this.#tokens.length) {
      throw new TemplateError(`unexpected ${this.#tokens[this.#pos]!.kind} in action`);
    }
    return p;
  }

  pipeline(): Pipeline {
    const stages: Operand[] = [this.command()];
    while (this.#tokens[this.#pos]?.kind === "pipe") {
      this.#pos++;
      stages.push(this.command());
    }
    return stages;
  }

  command(): Operand {
    const first = this.#tokens[this.#pos];
    if (first?.kind === "ident" && !["true", "false", "nil"].includes(first.name)) {
      this.#pos++;
      const args: Operand[] = [];
      while (this.#atOperand()) args.push(this.operand());
      return { kind: "call", name: first.name, args };
    }
    const op = this.operand();
    if (this.#atOperand()) throw new TemplateError("can't give argument to non-function");
    return op;
  }

  #atOperand(): boolean {
    const t = this.#tokens[this.#pos];
    return t !== undefined && t.kind !== "pipe" && t.kind !== "rparen";
  }

  operand(): Operand {
    const t = this.#tokens[this.#pos++];
    if (!t) throw new TemplateError("missing value in action");
    switch (t.kind) {
      case "field":
        return { kind: "field", path: t.path };
      case "var":
        return { kind: "var", name: t.name, path: t.path };
      case "string":
      case "number":
        return { kind: "literal", value: t.value };
      case "ident":
        if (t.name === "true") return { kind: "literal", value: true };
        if (t.name === "false") return { kind: "literal", value: false };
        if (t.name === "nil") return { kind: "literal", value: null };
        return { kind: "call", name: t.name, args: [] };
      case "lparen": {
        const pipeline = this.pipeline();
        if (this.#tokens[this.#pos++]?.kind !== "rparen") throw new TemplateError("unclosed (");
        return { kind: "pipeline", pipeline };
      }
      default:
        throw new TemplateError(`unexpected ${t.kind} in operand`);
    }
  }
}

function parsePipeline(src: string): Pipeline {
  return new PipelineParser(tokenize(src)).parseAll();
}

/** Splits `{{...}}` actions from text, applying trim markers. */
function lex(src: string): Array<{ text: string } | { action: string }> {
  const out: Array<{ text: string } | { action: string }> = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) {
      out.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (
      src.startsWith("- ", start) || src.startsWith("-\t", start) || src.startsWith("-\n", start)
    ) {
      text = text.trimEnd();
      start += 1;
    }
    if (text) out.push({ text });
    const close = src.indexOf("}}", start);
    if (close < 0) throw new TemplateError(`unclosed action in ${JSON.stringify(src)}`);
    let end = close;
    let trimAfter = false;
    if (src[close - 1] === "-" && /\s/.test(src[close - 2] ?? "")) {
      end = close - 1;
      trimAfter = true;
    }
    out.push({ action: src.slice(start, end).trim() });
    i = close + 2;
    if (trimAfter) { while (i < src.length && /\s/.test(src[i]!)) i++; }
  }
  return out;
}

/** Parses a template into its node tree. */
function parseTemplate(src: string): Node[] {
  const items = lex(src);
  let pos = 0;
  const parseList = (terminators: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (pos < items.length) {
      const item = items[pos++]!;
      if ("text" in item) {
        nodes.push({ kind: "text", text: item.text });
        continue;
      }
      const action = item.action;
      const word = /^[a-z]+/.exec(action)?.[0] ?? "";
      if (action.startsWith("/*")) continue; // comment
      if (terminators.includes(word) && (word === "end" || word === "else")) {
        return { nodes, end: action };
      }
      if (word === "if") {
        nodes.push(parseIf(action.slice(2)));
      } else if (word === "range") {
        let rest = action.slice(5).trim();
        const vars: string[] = [];
        const decl = /^(\$[A-Za-z0-9_]*)\s*(?:,\s*(\$[A-Za-z0-9_]*)\s*)?:=/.exec(rest);
        if (decl) {
          vars.push(decl[1]!);
          if (decl[2]) vars.push(decl[2]);
          rest = rest.slice(decl[0].length);
        }
        const pipeline = parsePipeline(rest);
        const body = parseList(["end", "else"]);
        const otherwise = body.end.startsWith("else") ? parseList(["end"]).nodes : [];
        nodes.push({ kind: "range", pipeline, vars, body: body.nodes, else: otherwise });
      } else if (word === "end" || word === "else") {
        throw new TemplateError(`unexpected {{${word}}}`);
      } else {
        nodes.push({ kind: "action", pipeline: parsePipeline(action) });
      }
    }
    if (terminators.length > 0) throw new TemplateError("unexpected EOF: missing {{end}}");
    return { nodes, end: "" };
  };
  // {{if A}}..{{else if B}}..{{else}}..{{end}}: the chain shares one {{end}}.
  const parseIf = (condition: string): Node => {
    const pipeline = parsePipeline(condition);
    const then = parseList(["end", "else"]);
    let otherwise: Node[] = [];
    if (then.end.startsWith("else")) {
      const rest = then.end.slice(4).trim();
      otherwise = rest.startsWith("if") ? [parseIf(rest.slice(2))] : parseList(["end"]).nodes;
    }
    return { kind: "if", pipeline, then: then.nodes, else: otherwise };
  };
  return parseList([]).nodes;
}

// ---- execution ---------------------------------------------------------------------------

/** Formats a value as Go's `%v` prints decoded JSON. */
export function formatValue(value: unknown): string {
  if (value === undefined) return "<no value>";
  if (value === null) return "<nil>";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(formatValue).join(" ")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0
    );
    return `map[${entries.map(([k, v]) => `${k}:${formatValue(v)}`).join(" ")}]`;
  }
  return String(value);
}

function truthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === "") {
    return false;
  }
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value as object).length > 0;
  return true;
}

function walk(value: unknown, path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || current === undefined || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function sprintf(format: string, args: unknown[]): string {
  let n = 0;
  return format.replace(
    /%([-+ 0#]*\d*(?:\.\d+)?)([vsdqxf%])/g,
    (_m, _flags: string, verb: string) => {
      if (verb === "%") return "%";
      const arg = args[n++];
      switch (verb) {
        case "q":
          return JSON.stringify(formatValue(arg));
        case "d":
          return String(Math.trunc(Number(arg)));
        case "x":
          return typeof arg === "number" ? arg.toString(16) : formatValue(arg);
        case "f":
          return Number(arg).toFixed(6);
        default:
          return formatValue(arg);
      }
    },
  );
}

const functions: Record<string, (...args: unknown[]) => unknown> = {
  json: (v) => JSON.stringify(v === undefined ? null : v),
  join: (list, sep) => (Array.isArray(list) ? list.map(formatValue).join(String(sep)) : ""),
  split: (s, sep) => String(s).split(String(sep)),
  lower: (s) => formatValue(s).toLowerCase(),
  upper: (s) => formatValue(s).toUpperCase(),
  title: (s) => formatValue(s).replace(/\b\w/g, (c) => c.toUpperCase()),
  pad: (s, left, right) => " ".repeat(Number(left)) + formatValue(s) + " ".repeat(Number(right)),
  truncate: (s, n) => [...formatValue(s)].slice(0, Number(n)).join(""),
  index: (v, ...keys) => {
    let current = v;
    for (const key of keys) {
      if (current === null || current === undefined) return undefined;
      current = (current as Record<string, unknown>)[String(key)];
    }
    return current;
  },
  len: (v) =>
    Array.isArray(v) || typeof v === "string"
      ? v.length
      : v && typeof v === "object"
      ? Object.keys(v).length
      : 0,
  print: (...args) => args.map(formatValue).join(""),
  println: (...args) => args.map(formatValue).join(" ") + "\n",
  printf: (format, ...args) => sprintf(String(format), args),
  eq: (a, ...rest) => rest.some((b) => a === b),
  ne: (a, b) => a !== b,
  not: (a) => !truthy(a),
  and: (...args) => args.find((a) => !truthy(a)) ?? args[args.length - 1],
  or: (...args) => args.find((a) => truthy(a)) ?? args[args.length - 1],
};

type Scope = Map<string, unknown>;

function evalOperand(op: Operand, dot: unknown, scope: Scope, piped: unknown[]): unknown {
  switch (op.kind) {
    case "field":
      return walk(dot, op.path);
    case "var": {
      if (!scope.has(op.name)) throw new TemplateError(`undefined variable: ${op.name}`);
      return walk(scope.get(op.name), op.path);
    }
    case "literal":
      return op.value;
    case "pipeline":
      return evalPipeline(op.pipeline, dot, scope);
    case "call": {
      const fn = functions[op.name];
      if (!fn) throw new TemplateError(`function "${op.name}" not defined`);
      const args = op.args.map((a) => evalOperand(a, dot, scope, []));
      return fn(...args, ...piped);
    }
  }
}

function evalPipeline(pipeline: Pipeline, dot: unknown, scope: Scope): unknown {
  let value: unknown;
  pipeline.forEach((stage, i) => {
    if (i > 0 && stage.kind !== "call") {
      throw new TemplateError("non executable command in pipeline stage");
    }
    value = evalOperand(stage, dot, scope, i === 0 ? [] : [value]);
  });
  return value;
}

function execNodes(nodes: Node[], dot: unknown, scope: Scope, out: string[]): void {
  for (const node of nodes) {
    switch (node.kind) {
      case "text":
        out.push(node.text);
        break;
      case "action":
        out.push(formatValue(evalPipeline(node.pipeline, dot, scope)));
        break;
      case "if":
        execNodes(
          truthy(evalPipeline(node.pipeline, dot, scope)) ? node.then : node.else,
          dot,
          scope,
          out,
        );
        break;
      case "range": {
        const value = evalPipeline(node.pipeline, dot, scope);
        let entries: Array<[unknown, unknown]> = [];
        if (Array.isArray(value)) entries = value.map((v, i) => [i, v]);
        else if (value && typeof value === "object") {
          entries = Object.keys(value).sort().map((
            k,
          ) => [k, (value as Record<string, unknown>)[k]]);
        } else if (typeof value === "number") {
          entries = Array.from({ length: value }, (_, i) => [i, i]);
        }
        if (entries.length === 0) {
          execNodes(node.else, dot, scope, out);
          break;
        }
        for (const [key, elem] of entries) {
          const inner = new Map(scope);
          if (node.vars.length === 1) inner.set(node.vars[0]!, elem);
          if (node.vars.length === 2) {
            inner.set(node.vars[0]!, key);
            inner.set(node.vars[1]!, elem);
          }
          execNodes(node.body, elem, inner, out);
        }
        break;
      }
    }
  }
}

/** A parsed template, executed against plain data. */
export class Template {
  #nodes: Node[];

  /** Parses `src`; throws {@link TemplateError} when it is malformed. */
  constructor(src: string) {
    this.#nodes = parseTemplate(src);
  }

  /** Renders the template with `data` as `.` and `$`. */
  execute(data: unknown): string {
    const out: string[] = [];
    execNodes(this.#nodes, data, new Map([["$", data]]), out);
    return out.join("");
  }
}

/** Parses and renders `src` with `data` in one go. */
export function renderTemplate(src: string, data: unknown): string {
  return new Template(src).execute(data);
}
