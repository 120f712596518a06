/**
 * `pouch remount-lxcfs`: re-binds lxcfs's files in every running container that uses lxcfs,
 * without restarting them (`POST /lxcfs/remount`). The daemon does this itself when the lxcfs
 * it supervises restarts; this command is for an lxcfs under its own unit
 * (`ExecStartPost=pouch remount-lxcfs`).
 *
 * @module
 */
import { type Command, type CommandContext, err, out } from "./command.ts";

/** `POST /lxcfs/remount`'s answer. */
interface RemountAnswer {
  Remounted?: string[];
  Failed?: Array<{ id: string; error: string }>;
}

/** `remount-lxcfs`. */
export const remountLxcfsCommand: Command = {
  name: "remount-lxcfs",
  usage: "remount-lxcfs",
  description: "Remount lxcfs's /proc files in the running containers that use lxcfs",
  flags: [],
  maxArgs: 0,
  async run(ctx: CommandContext) {
    const answer = await ctx.client.json<RemountAnswer>("POST", "/lxcfs/remount");
    for (const id of answer.Remounted ?? []) await out(ctx, `${id}\n`);
    const failed = answer.Failed ?? [];
    for (const failure of failed) {
      await err(ctx, `remounting lxcfs in ${failure.id} failed: ${failure.error}\n`);
    }
    return failed.length > 0 ? 1 : 0;
  },
};
