/**
 * An example hook plugin (see engine/plugins.ts for the interface). Copy it into the plugin
 * directory (`--plugin-dir`, default `/etc/pouch/plugins`) and restart the daemon:
 *
 * - every new container gets the label `io.pouch.example=true` and the environment variable
 *   `POUCH_EXAMPLE=1` (unless it sets them itself);
 * - volumes of the `local` driver get the label `io.pouch.example=true`;
 * - `GET /plugins/example/ping` answers `{"plugin":"example","containersStarted":N}`;
 * - `GET /_ping` answers with the header `X-Pouch-Example: 1` (a wrapped handler);
 * - starts and stops are written to the daemon's log (stderr).
 *
 * A plugin module imports nothing from pouch: the daemon loads it from anywhere, so the types
 * below are written out instead of imported.
 *
 * @module
 */

/** The parts of a create request this plugin touches. */
interface CreateRequest {
  Env?: string[];
  Labels?: Record<string, string>;
}

/** What container hooks get. */
interface ContainerInfo {
  id: string;
  name: string;
  exitCode?: number;
}

/** The parts of Hono's context this plugin uses. */
interface Context {
  json(body: unknown): Response;
  header(name: string, value: string): void;
}

let started = 0;

function note(message: string): void {
  // Plugins have no logger of their own: one line on stderr lands in the daemon's log.
  Deno.stderr.writeSync(new TextEncoder().encode(`plugin example: ${message}\n`));
}

export default {
  name: "example",
  container: {
    beforeCreate(request: CreateRequest): CreateRequest {
      request.Labels = { "io.pouch.example": "true", ...(request.Labels ?? {}) };
      const env = request.Env ?? [];
      if (!env.some((e) => e.startsWith("POUCH_EXAMPLE="))) env.push("POUCH_EXAMPLE=1");
      request.Env = env;
      return request;
    },
    beforeStart(container: ContainerInfo): void {
      started++;
      note(`starting ${container.name}`);
    },
    afterStop(container: ContainerInfo): void {
      note(`${container.name} exited with ${container.exitCode}`);
    },
  },
  volume: {
    beforeVolumeCreate(volume: { Driver: string; Labels: Record<string, string> }) {
      if (volume.Driver === "local") volume.Labels["io.pouch.example"] = "true";
      return volume;
    },
  },
  api: {
    routes(app: { get(path: string, handler: (c: Context) => Response): unknown }): void {
      app.get(
        "/plugins/example/ping",
        (c) => c.json({ plugin: "example", containersStarted: started }),
      );
    },
    wrap: [{
      method: "GET",
      path: "/_ping",
      async handler(c: Context, next: () => Promise<void>): Promise<void> {
        await next();
        c.header("X-Pouch-Example", "1");
      },
    }],
  },
};
