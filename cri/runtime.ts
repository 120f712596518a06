/**
 * The runtime-wide RPCs: Version, Status (RuntimeReady, NetworkReady), UpdateRuntimeConfig and
 * RuntimeConfig.
 *
 * @module
 */
import { VERSION } from "../engine/version.ts";
import type { CriContext } from "./context.ts";
import type { Handlers } from "./server.ts";

/** The CRI version the server speaks (`runtime_api_version`). */
export const CRI_API_VERSION = "v1";

/** The runtime RPCs' handlers. */
export function runtimeHandlers(ctx: CriContext): Handlers {
  let podCidr = "";
  return {
    Version() {
      return Promise.resolve({
        version: "0.1.0",
        runtimeName: "pouch",
        runtimeVersion: VERSION,
        runtimeApiVersion: CRI_API_VERSION,
      });
    },

    Status() {
      const networkReady = ctx.settings.podNetworking;
      return Promise.resolve({
        status: {
          conditions: [
            { type: "RuntimeReady", status: true, reason: "", message: "" },
            {
              type: "NetworkReady",
              status: networkReady,
              reason: networkReady ? "" : "NetworkPluginNotReady",
              message: networkReady
                ? ""
                : "pouch has no network manager: only host-network pods can run",
            },
          ],
        },
        info: {},
      });
    },

    UpdateRuntimeConfig(request: { runtimeConfig: { networkConfig?: { podCidr?: string } } }) {
      const cidr = request.runtimeConfig?.networkConfig?.podCidr ?? "";
      if (cidr && cidr !== podCidr) {
        podCidr = cidr;
        ctx.backend.log.info("pod CIDR from the kubelet", { cidr });
      }
      return Promise.resolve({});
    },

    RuntimeConfig() {
      // Containers' cgroups are paths under their parent: the cgroupfs driver.
      return Promise.resolve({ linux: { cgroupDriver: "CGROUPFS" } });
    },
  };
}
