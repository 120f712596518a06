/**
 * `pouch update [OPTIONS] CONTAINER...`: Docker's live update of resource limits and the restart
 * policy (`POST /containers/{id}/update`), without restarting the containers.
 *
 * @module
 */
import { type Command, forEachArg, out } from "./command.ts";
import { createFlags } from "./create.ts";
import { UsageError } from "./flags.ts";
import { HOST_FIELDS_BY_FLAG, hostSettingsOf } from "./upgrade.ts";

/** The create flags `update` takes: resources and the restart policy, not volumes or ulimits. */
const updateFlags = createFlags.filter((spec) =>
  spec.name in HOST_FIELDS_BY_FLAG && !["volume", "ulimit"].includes(spec.name)
);

/** `pouch update`. */
export const updateCommand: Command = {
  name: "update",
  usage: "update [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Update configuration of one or more containers",
  flags: updateFlags,
  minArgs: 1,
  async run(ctx, flags) {
    const body = hostSettingsOf(ctx, flags, updateFlags);
    if (Object.keys(body).length === 0) {
      throw new UsageError("you must provide one or more flags when using this command");
    }
    return await forEachArg(ctx, flags.args, async (container) => {
      await ctx.client.call("POST", `/containers/${encodeURIComponent(container)}/update`, {
        json: body,
      });
      await out(ctx, `${container}\n`);
    });
  },
};
