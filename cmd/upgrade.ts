/**
 * `pouch upgrade --image IMAGE [OPTIONS] CONTAINER [COMMAND [ARG...]]`: PouchContainer's
 * in-place upgrade. The flags are the create flags that make sense to change; the CLI pulls a
 * missing image first, then sends one `POST /containers/{id}/upgrade`.
 *
 * @module
 */
import { ApiError } from "./client.ts";
import { type Command, type CommandContext, err, out } from "./command.ts";
import { buildCreateRequest, createFlags } from "./create.ts";
import { Flags, type FlagSpec, type ParsedFlags, UsageError } from "./flags.ts";
import { pullImage } from "./registry.ts";

/** The create flags `upgrade` (and `update`) take, and the host settings each one sets. */
export const HOST_FIELDS_BY_FLAG: Record<string, string[]> = {
  memory: ["Memory"],
  "memory-swap": ["MemorySwap"],
  "memory-reservation": ["MemoryReservation"],
  cpus: ["NanoCpus"],
  "cpu-shares": ["CpuShares"],
  "cpu-period": ["CpuPeriod"],
  "cpu-quota": ["CpuQuota"],
  "cpuset-cpus": ["CpusetCpus"],
  "cpuset-mems": ["CpusetMems"],
  "pids-limit": ["PidsLimit"],
  "blkio-weight": ["BlkioWeight"],
  ulimit: ["Ulimits"],
  volume: ["Binds"],
  restart: ["RestartPolicy"],
};

/** Config flags `upgrade` takes besides those of {@link HOST_FIELDS_BY_FLAG}. */
const CONFIG_FLAGS = ["entrypoint", "env", "env-file", "label", "label-file", "workdir", "user"];

const upgradeFlags: FlagSpec[] = [
  { name: "image", kind: "string", description: "Image to upgrade the container to (required)" },
  ...createFlags.filter((spec) =>
    spec.name in HOST_FIELDS_BY_FLAG || CONFIG_FLAGS.includes(spec.name)
  ),
];

/**
 * Rebuilds the flags (of `specs`) as `create IMAGE COMMAND...` would have them, so that the
 * create request builder parses every value exactly as `run` does.
 */
function asCreateFlags(
  flags: Flags,
  specs: FlagSpec[],
  args: { image: string; command: string[] },
): Flags {
  const values: ParsedFlags["values"] = new Map();
  for (const spec of specs) {
    if (spec.name === "image" || !flags.has(spec.name)) continue;
    if (spec.kind === "bool") values.set(spec.name, flags.bool(spec.name));
    else if (spec.kind === "list") values.set(spec.name, flags.list(spec.name));
    else values.set(spec.name, flags.string(spec.name)!);
  }
  return new Flags({ args: [args.image, ...args.command], values }, createFlags);
}

/**
 * The host settings (`Memory`, `RestartPolicy`, ...) of the flags given among `specs`, parsed
 * as `run` parses them; only those the user gave.
 */
export function hostSettingsOf(
  ctx: CommandContext,
  flags: Flags,
  specs: FlagSpec[],
): Record<string, unknown> {
  const request = buildCreateRequest(
    asCreateFlags(flags, specs, { image: "-", command: [] }),
    { lookupEnv: ctx.env, readFile: ctx.readTextFile, isRun: false, cwd: Deno.cwd },
  );
  const created = (request.body as unknown as { HostConfig?: Record<string, unknown> })
    .HostConfig ?? {};
  const host: Record<string, unknown> = {};
  for (const [flag, fields] of Object.entries(HOST_FIELDS_BY_FLAG)) {
    if (!flags.has(flag)) continue;
    for (const field of fields) {
      if (created[field] !== undefined) host[field] = created[field];
    }
  }
  return host;
}

/** `pouch upgrade`. */
export const upgradeCommand: Command = {
  name: "upgrade",
  usage: "upgrade --image IMAGE [OPTIONS] CONTAINER [COMMAND [ARG...]]",
  description: "Upgrade a container's image in place, keeping its ID, IP, volumes and config",
  flags: upgradeFlags,
  stopAtFirstArg: true,
  minArgs: 1,
  errorExitCode: 125,
  async run(ctx, flags) {
    const image = flags.string("image");
    if (!image) throw new UsageError("upgrade needs --image IMAGE");
    const [container, ...command] = flags.args as [string, ...string[]];
    const request = buildCreateRequest(asCreateFlags(flags, upgradeFlags, { image, command }), {
      lookupEnv: ctx.env,
      readFile: ctx.readTextFile,
      isRun: false,
      cwd: Deno.cwd,
    });
    const created = request.body as unknown as Record<string, unknown>;
    const body: Record<string, unknown> = { Image: image };
    if (command.length > 0) body.Cmd = command;
    if (flags.has("entrypoint")) body.Entrypoint = created.Entrypoint;
    for (const key of ["Env", "Labels", "WorkingDir", "User"]) {
      if (created[key] !== undefined) body[key] = created[key];
    }
    const host = hostSettingsOf(ctx, flags, upgradeFlags);
    if (Object.keys(host).length > 0) body.HostConfig = host;

    const upgrade = () =>
      ctx.client.call("POST", `/containers/${encodeURIComponent(container)}/upgrade`, {
        json: body,
      });
    try {
      await upgrade();
    } catch (error) {
      if (
        !(error instanceof ApiError && error.status === 404 && /no such image/i.test(error.message))
      ) {
        throw error;
      }
      // As run does: pull the missing image, then try once more.
      await err(ctx, `Unable to find image '${image}' locally\n`);
      await pullImage(ctx, image, { toStderr: true });
      await upgrade();
    }
    await out(ctx, `${container}\n`);
    return 0;
  },
};
