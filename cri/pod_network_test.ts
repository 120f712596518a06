import assert from "node:assert/strict";
import { Logger } from "../engine/log.ts";
import type { CniResult, NetworkConfigList, RuntimeConf } from "../network/cni.ts";
import { podAddress, PodNetworks } from "./pod_network.ts";

const quiet = new Logger("error", () => {});
const list: NetworkConfigList = {
  cniVersion: "1.0.0",
  name: "pods",
  plugins: [{ type: "bridge" }, { type: "portmap", capabilities: { portMappings: true } }],
};
const result: CniResult = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "cni0" }, { name: "eth0", sandbox: "/run/netns/x", mac: "aa:bb" }],
  ips: [{ address: "10.213.1.7/24", gateway: "10.213.1.1", interface: 1 }],
  routes: [],
  dns: {},
};

function fakeCni() {
  const calls: Array<{ command: string; rt: RuntimeConf; prev?: CniResult }> = [];
  return {
    calls,
    cni: {
      add: (_list: NetworkConfigList, rt: RuntimeConf) => {
        calls.push({ command: "ADD", rt });
        return Promise.resolve(result);
      },
      del: (_list: NetworkConfigList, rt: RuntimeConf, prev?: CniResult) => {
        calls.push({ command: "DEL", rt, prev });
        return Promise.resolve();
      },
      check: (_list: NetworkConfigList, rt: RuntimeConf, prev: CniResult) => {
        calls.push({ command: "CHECK", rt, prev });
        return Promise.resolve();
      },
    },
  };
}

Deno.test("PodNetworks gives the plugins the kubelet's args, host ports and DNS", async () => {
  const { cni, calls } = fakeCni();
  const networks = new PodNetworks({ confDir: "/nonexistent", cni, log: quiet });
  const planned = networks.plan({ file: "/etc/cni/net.d/10-pods.conflist", list }, {
    id: "f".repeat(64),
    netns: "/run/pouch/netns/x",
    config: {
      metadata: { name: "web", namespace: "prod", uid: "u1", attempt: 0 },
      portMappings: [
        { protocol: "TCP", containerPort: 80, hostPort: 8080, hostIp: "127.0.0.1" },
        // No host port: nothing for portmap.
        { protocol: "UDP", containerPort: 53 },
      ],
      dnsConfig: { servers: ["10.0.0.10"], searches: ["prod.svc"], options: [] },
    },
  });
  assert.equal(planned.phase, "adding");
  assert.equal(podAddress(planned), "");
  const added = await networks.add("f".repeat(64), planned);
  assert.equal(added.phase, "ready");
  assert.equal(podAddress(added), "10.213.1.7");
  assert.deepEqual(calls[0]!.rt, {
    containerId: "f".repeat(64),
    netns: "/run/pouch/netns/x",
    ifName: "eth0",
    args: {
      K8S_POD_NAMESPACE: "prod",
      K8S_POD_NAME: "web",
      K8S_POD_INFRA_CONTAINER_ID: "f".repeat(64),
      K8S_POD_UID: "u1",
    },
    capabilityArgs: {
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "127.0.0.1" }],
      dns: { servers: ["10.0.0.10"], searches: ["prod.svc"], options: [] },
    },
  });
  await networks.check("f".repeat(64), added);
  assert.equal(calls[1]!.command, "CHECK");
  assert.deepEqual(calls[1]!.prev, result);
  // The namespace is not mounted here: the DEL goes without it, as the spec says.
  const removed = await networks.del("f".repeat(64), added);
  assert.equal(removed.phase, "removed");
  assert.equal(calls[2]!.command, "DEL");
  assert.equal(calls[2]!.rt.netns, "");
  assert.deepEqual(calls[2]!.prev, result);
  // Once is enough; a removed pod is not checked either.
  await networks.del("f".repeat(64), removed);
  await networks.check("f".repeat(64), removed);
  assert.equal(calls.length, 3);
});
