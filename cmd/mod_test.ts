import assert from "node:assert/strict";
import { type FakeAnswer, type FakeRequest, respond, startFakeServer } from "./_fake_server.ts";
import { attachCommands } from "./attach.ts";
import type { Command } from "./command.ts";
import { containerCommands, containerGroupCommands } from "./container.ts";
import { cpCommand } from "./cp.ts";
import { diskCommands } from "./disk.ts";
import { imageCommands, imageGroupCommands } from "./image.ts";
import { remountLxcfsCommand } from "./lxcfs.ts";
import { type CommandEntry, commandTable, runCli } from "./mod.ts";
import { diffCommand, eventsCommand, portCommand, statsCommand, topCommand } from "./monitor.ts";
import { networkGroupCommands } from "./network.ts";
import { systemCommands } from "./system.ts";
import { updateCommand } from "./update.ts";
import { upgradeCommand } from "./upgrade.ts";
import { volumeGroupCommands } from "./volume.ts";
import { BufferWriter, encodeFrame } from "./stream.ts";
import type { ByteSource } from "./http.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ID = "f".repeat(64);

function stdinOf(text: string): ByteSource {
  const bytes = encoder.encode(text);
  let done = false;
  return {
    read(p) {
      if (done || bytes.length === 0) return Promise.resolve(null);
      done = true;
      p.set(bytes);
      return Promise.resolve(bytes.length);
    },
  };
}

async function cli(socket: string, args: string[], stdin = "") {
  const stdout = new BufferWriter();
  const stderr = new BufferWriter();
  const code = await runCli(["-H", `unix://${socket}`, ...args], {
    stdout,
    stderr,
    stdin: stdinOf(stdin),
    env: { HOME: "/root" },
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

function json(req: FakeRequest): unknown {
  return JSON.parse(decoder.decode(req.body));
}

Deno.test("run -d creates, starts and prints the ID", async () => {
  await using server = await startFakeServer((req) => {
    if (req.path === "/v1.41/containers/create") {
      return { status: 201, json: { Id: ID, Warnings: [] } };
    }
    if (req.path === `/v1.41/containers/${ID}/start`) return { status: 204 };
    return { status: 404, json: { message: "unexpected" } };
  });
  const res = await cli(server.socketPath, [
    "run",
    "-d",
    "--name",
    "web",
    "-m",
    "16m",
    "busybox",
    "sleep",
    "9",
  ]);
  assert.deepEqual(res, { code: 0, stdout: ID + "\n", stderr: "" });
  const create = server.requests[0]!;
  assert.equal(create.query.get("name"), "web");
  const body = json(create) as { Cmd: string[]; HostConfig: { Memory: number } };
  assert.deepEqual(body.Cmd, ["sleep", "9"]);
  assert.equal(body.HostConfig.Memory, 16 * 1024 * 1024);
});

Deno.test("run with a bad value or flag exits 125 and sends nothing", async () => {
  await using server = await startFakeServer(() => ({ status: 500, json: { message: "no" } }));
  const bad = await cli(server.socketPath, ["run", "-m", "abc", "busybox"]);
  assert.equal(bad.code, 125);
  assert.equal(
    bad.stderr,
    `invalid argument "abc" for "-m, --memory" flag: invalid size: 'abc'\nSee 'pouch run --help'.\n`,
  );
  const unknown = await cli(server.socketPath, ["run", "--x", "busybox"]);
  assert.equal(unknown.code, 125);
  assert.equal(unknown.stderr, "unknown flag: --x\nSee 'pouch run --help'.\n");
  const ps = await cli(server.socketPath, ["ps", "--x"]);
  assert.equal(ps.code, 1);
  assert.equal(server.requests.length, 0);
});

Deno.test("run reports a missing image and exits 125", async () => {
  await using server = await startFakeServer(() => ({
    status: 404,
    json: { message: "No such image: busybox:latest" },
  }));
  const res = await cli(server.socketPath, ["run", "busybox"]);
  assert.equal(res.code, 125);
  assert.equal(
    res.stderr,
    "Unable to find image 'busybox:latest' locally\nError response from daemon: No such image: busybox:latest\n",
  );
});

Deno.test("run picks 127 and 126 from the start error", async () => {
  let message = "";
  await using server = await startFakeServer((req) => {
    if (req.path.endsWith("/create")) return { status: 201, json: { Id: ID } };
    if (req.path.endsWith("/start")) return { status: 500, json: { message } };
    return { status: 404, json: { message: "?" } };
  });
  message = 'exec: "nope": executable file not found in $PATH';
  assert.equal((await cli(server.socketPath, ["run", "-d", "busybox", "nope"])).code, 127);
  message = "exec: permission denied";
  assert.equal((await cli(server.socketPath, ["run", "-d", "busybox", "/etc"])).code, 126);
  message = "something else";
  assert.equal((await cli(server.socketPath, ["run", "-d", "busybox"])).code, 125);
});

Deno.test("cannot connect: exit 1 for ps, 125 for run", async () => {
  const ps = await runCli(["-H", "unix:///nonexistent.sock", "ps"], {
    stdout: new BufferWriter(),
    stderr: new BufferWriter(),
  });
  assert.equal(ps, 1);
  const stderr = new BufferWriter();
  const run = await runCli(["run", "busybox"], {
    stdout: new BufferWriter(),
    stderr,
    env: { POUCH_HOST: "unix:///nonexistent.sock" },
  });
  assert.equal(run, 125);
  assert.equal(
    stderr.text(),
    "Cannot connect to the pouch daemon at unix:///nonexistent.sock. Is the daemon running?\n",
  );
});

/** A fake daemon that runs one attached container: echoes stdin, prints, exits with 3. */
function attachedDaemon(options: { tty: boolean }) {
  let started!: () => void;
  const start = new Promise<void>((r) => (started = r));
  let exited!: () => void;
  const exit = new Promise<void>((r) => (exited = r));
  const order: string[] = [];
  return {
    order,
    handler: async (req: FakeRequest): Promise<FakeAnswer> => {
      const what = req.path.split("/").pop()!;
      order.push(what);
      if (what === "create") return { status: 201, json: { Id: ID } };
      if (what === "start") {
        started();
        return { status: 204 };
      }
      if (what === "resize") return { status: 200 };
      if (what === "wait") {
        await req.conn.write(
          encoder.encode(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
          ),
        );
        await exit;
        const body = '{"StatusCode":3}\n';
        await req.conn.write(encoder.encode(`${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`));
        req.conn.close();
        return "hijacked";
      }
      if (what === "attach") {
        await respond(req.conn, 101, "", { Connection: "Upgrade", Upgrade: "tcp" });
        await start;
        const frame = (stream: number, text: string) =>
          options.tty ? encoder.encode(text) : encodeFrame(stream, text);
        await req.conn.write(frame(1, "hello\n"));
        await req.conn.write(frame(2, "warn\n"));
        if (req.query.get("stdin") === "1") {
          while (true) {
            const chunk = await req.reader.readSome();
            if (chunk === null) break;
            await req.conn.write(frame(1, "echo:" + decoder.decode(chunk)));
          }
        }
        req.conn.close();
        exited();
        return "hijacked";
      }
      return { status: 404, json: { message: "?" } };
    },
  };
}

Deno.test("run attaches before start, copies the streams and exits with the container's code", async () => {
  const daemon = attachedDaemon({ tty: false });
  await using server = await startFakeServer(daemon.handler);
  const res = await cli(server.socketPath, ["run", "-i", "--rm", "busybox", "cat"], "typed\n");
  assert.deepEqual(res, { code: 3, stdout: "hello\necho:typed\n", stderr: "warn\n" });
  // Attach and wait go at once (in either order), both before the start.
  assert.equal(daemon.order[0], "create");
  assert.deepEqual(daemon.order.slice(1, 3).sort(), ["attach", "wait"]);
  assert.equal(daemon.order[3], "start");
  assert.equal(daemon.order.length, 4);
  const wait = server.requests.find((r) => r.path.endsWith("/wait"))!;
  assert.equal(wait.query.get("condition"), "removed");
});

Deno.test("run -t copies the raw stream", async () => {
  const daemon = attachedDaemon({ tty: true });
  await using server = await startFakeServer(daemon.handler);
  const res = await cli(server.socketPath, ["run", "-t", "busybox"]);
  assert.deepEqual(res, { code: 3, stdout: "hello\nwarn\n", stderr: "" });
  const wait = server.requests.find((r) => r.path.endsWith("/wait"))!;
  assert.equal(wait.query.get("condition"), "next-exit");
});

Deno.test("rm goes on after an error and exits 1", async () => {
  await using server = await startFakeServer((req) =>
    req.path.endsWith("/b")
      ? { status: 404, json: { message: "No such container: b" } }
      : { status: 204 }
  );
  const res = await cli(server.socketPath, ["rm", "-f", "a", "b", "c"]);
  assert.deepEqual(res, {
    code: 1,
    stdout: "a\nc\n",
    stderr: "Error response from daemon: No such container: b\n",
  });
  assert.equal(server.requests[0]!.query.get("force"), "1");
});

Deno.test("ps lists containers with filters, -q and --format", async () => {
  await using server = await startFakeServer(() => ({
    status: 200,
    json: [{
      Id: ID,
      Names: ["/web"],
      Image: "busybox",
      Created: Math.floor(Date.now() / 1000) - 5,
      State: "running",
      Status: "Up 5 seconds",
      HostConfig: { Runtime: "runc" },
    }],
  }));
  const table = await cli(server.socketPath, [
    "ps",
    "-a",
    "-f",
    "status=running",
    "-f",
    "name=web",
  ]);
  assert.equal(table.code, 0);
  assert.match(
    table.stdout,
    /^Name +ID +Status +Created +Image +Runtime\nweb +ffffff +Up 5 seconds +5 seconds ago +busybox +runc\n$/,
  );
  const query = server.requests[0]!.query;
  assert.equal(query.get("all"), "1");
  assert.deepEqual(JSON.parse(query.get("filters")!), {
    status: { running: true },
    name: { web: true },
  });
  assert.equal((await cli(server.socketPath, ["ps", "-q"])).stdout, "ffffffffffff\n");
  assert.equal(
    (await cli(server.socketPath, ["ps", "--format", "{{.Names}} {{.State}}"])).stdout,
    "web running\n",
  );
  assert.equal(
    JSON.parse((await cli(server.socketPath, ["container", "ls", "--format", "json"])).stdout)
      .Names,
    "web",
  );
});

Deno.test("logs inspects for the TTY, then demultiplexes", async () => {
  await using server = await startFakeServer((req) => {
    if (req.path.endsWith("/json")) {
      return { status: 200, json: { Id: ID, Config: { Tty: false } } };
    }
    const body = new Uint8Array([...encodeFrame(1, "out\n"), ...encodeFrame(2, "err\n")]);
    return { status: 200, body };
  });
  const res = await cli(server.socketPath, ["logs", "--tail", "5", "-t", "web"]);
  assert.deepEqual(res, { code: 0, stdout: "out\n", stderr: "err\n" });
  const logs = server.requests[1]!;
  assert.equal(logs.query.toString(), "stdout=1&stderr=1&timestamps=1&tail=5");
});

Deno.test("inspect prints a 4-space JSON array, or a template per object", async () => {
  await using server = await startFakeServer((req) => {
    if (req.path === "/v1.41/containers/web/json") {
      return { status: 200, json: { Id: ID, Name: "/web", State: { Status: "running" } } };
    }
    if (req.path === "/v1.41/images/busybox/json") return { status: 200, json: { Id: "sha256:1" } };
    return { status: 404, json: { message: "not found" } };
  });
  const all = await cli(server.socketPath, ["inspect", "web"]);
  assert.equal(
    all.stdout,
    JSON.stringify([{ Id: ID, Name: "/web", State: { Status: "running" } }], null, 4) + "\n",
  );
  const tpl = await cli(server.socketPath, ["inspect", "-f", "{{.State.Status}} {{.Name}}", "web"]);
  assert.equal(tpl.stdout, "running /web\n");
  const image = await cli(server.socketPath, ["inspect", "-f", "{{.Id}}", "busybox"]);
  assert.equal(image.stdout, "sha256:1\n");
  const missing = await cli(server.socketPath, ["inspect", "nope"]);
  assert.deepEqual(missing, { code: 1, stdout: "[]\n", stderr: "Error: No such object: nope\n" });
});

Deno.test("load streams the tar from stdin and prints the daemon's messages", async () => {
  await using server = await startFakeServer((req) => ({
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: `{"stream":"Loaded image: busybox:latest (${req.body.length} bytes)\\n"}\n`,
  }));
  const res = await cli(server.socketPath, ["load"], "TARDATA");
  assert.deepEqual(res, {
    code: 0,
    stdout: "Loaded image: busybox:latest (7 bytes)\n",
    stderr: "",
  });
  assert.equal(server.requests[0]!.headers.get("content-type"), "application/x-tar");
});

Deno.test("import sends the tar with repo, changes and message", async () => {
  await using server = await startFakeServer(() => ({
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: `{"status":"sha256:abc"}\n`,
  }));
  const res = await cli(
    server.socketPath,
    ["import", "-c", "CMD sh", "-m", "hi", "-", "me/img:1"],
    "TAR",
  );
  assert.deepEqual(res, { code: 0, stdout: "sha256:abc\n", stderr: "" });
  const q = server.requests[0]!.query;
  assert.equal(q.toString(), "fromSrc=-&repo=me%2Fimg%3A1&message=hi&changes=CMD+sh");
});

Deno.test("rmi prints Untagged and Deleted lines", async () => {
  await using server = await startFakeServer(() => ({
    status: 200,
    json: [{ Untagged: "busybox:latest" }, { Deleted: "sha256:abc" }],
  }));
  const res = await cli(server.socketPath, ["image", "rm", "busybox"]);
  assert.deepEqual(res, {
    code: 0,
    stdout: "Untagged: busybox:latest\nDeleted: sha256:abc\n",
    stderr: "",
  });
});

Deno.test("--help, -v and argument counts", async () => {
  const help = await cli("/x", ["run", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: {2}pouch run \[OPTIONS\] IMAGE/);
  assert.match(help.stdout, /-m, --memory string/);
  assert.match(help.stdout, /-h, --hostname string/);
  assert.match((await cli("/x", ["-v"])).stdout, /^pouch version \d/);
  const missing = await cli("/x", ["rm"]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /^"pouch rm" requires at least 1 argument\.\nSee 'pouch rm --help'\./,
  );
  assert.equal((await cli("/x", ["bogus"])).code, 1);
});

Deno.test("the command table names and describes the commands as their modules do", async () => {
  // The commands each place lists, from their modules: what the table must say, in order.
  const inspection = [cpCommand, topCommand, statsCommand, portCommand, diffCommand];
  const expected: Record<string, Command[]> = {
    "": [
      ...containerCommands,
      ...attachCommands,
      ...inspection,
      ...imageCommands,
      ...systemCommands,
      eventsCommand,
      remountLxcfsCommand,
      upgradeCommand,
      updateCommand,
    ],
    container: [...containerGroupCommands, ...attachCommands, ...inspection],
    image: imageGroupCommands,
    volume: volumeGroupCommands,
    network: networkGroupCommands,
    system: [...diskCommands, ...systemCommands.filter((c) => c.name === "info"), eventsCommand],
  };
  const summary = (c: Command | CommandEntry) => ({
    name: c.name,
    aliases: c.aliases ?? [],
    description: c.description,
  });
  const places: Array<[string, CommandEntry[]]> = [
    ["", commandTable.topLevel],
    ...commandTable.groups.map((g): [string, CommandEntry[]] => [g.name, g.commands]),
  ];
  assert.deepEqual(places.map(([place]) => place), Object.keys(expected));
  for (const [place, entries] of places) {
    assert.deepEqual(entries.map(summary), expected[place]!.map(summary), `in "${place}"`);
    // Each entry loads the very command its place lists.
    const loaded = await Promise.all(entries.map((entry) => entry.load()));
    loaded.forEach((command, i) => assert.equal(command, expected[place]![i], `in "${place}"`));
  }
});
