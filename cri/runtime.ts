/**
 * The runtime-wide RPCs: Version, Status (RuntimeReady, NetworkReady), UpdateRuntimeConfig and
 * RuntimeConfig.
 *
 * @module
 */
import { messageOf } from "../engine/errors.ts";
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

    async Status(request: { verbose?: boolean }) {
      const network = await networkCondition(ctx);
      return {
        status: {
          conditions: [
            { type: "RuntimeReady", status: true, reason: "", message: "" },
            { type: "NetworkReady", ...network.condition },
          ],
        },
        // `crictl info` shows these (containerd's `cniconfig` likewise).
        info: request.verbose ? { cniconfig: JSON.stringify(network.info) } : {},
      };
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

/**
 * The NetworkReady condition: ready with the CNI configuration directory's network, or with
 * pouch's default bridge when the directory holds none (the reason says which); not ready
 * without a network manager, when only host-network pods can run.
 */
async function networkCondition(ctx: CriContext): Promise<{
  condition: { status: boolean; reason: string; message: string };
  info: Record<string, unknown>;
}> {
  if (!ctx.settings.podNetworking) {
    return {
      condition: {
        status: false,
        reason: "NetworkPluginNotReady",
        message: "pouch has no network manager: only host-network pods can run",
      },
      info: {},
    };
  }
  const podNetworks = ctx.podNetworks;
  const scan = await podNetworks?.scan().catch((err) => {
    ctx.backend.log.warn("reading the CNI configuration directory failed", {
      error: messageOf(err),
    });
    return undefined;
  });
  const info = {
    confDir: podNetworks?.confDir ?? "",
    binDirs: podNetworks?.binDirs ?? [],
    file: scan?.config?.file ?? "",
    network: scan?.config?.list.name ?? "",
    skipped: scan?.skipped ?? [],
  };
  if (scan?.config) {
    return { condition: { status: true, reason: "", message: "" }, info };
  }
  const where = podNetworks ? ` in ${podNetworks.confDir}` : "";
  return {
    condition: {
      status: true,
      reason: "DefaultBridgeNetwork",
      message: `no CNI network configuration${where}: pods use pouch's default bridge network`,
    },
    info,
  };
}
