import assert from "node:assert/strict";
import { findCniRules, splitRule } from "./iptables.ts";

const SAVE = `*nat
:POSTROUTING ACCEPT [0:0]
:CNI-d7e073bb950625e04dbb2725 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.231.7.9/32 -m comment --comment "name: \\"net1\\" id: \\"abc123\\"" -j CNI-d7e073bb950625e04dbb2725
-A CNI-d7e073bb950625e04dbb2725 -d 10.231.7.0/24 -m comment --comment "name: \\"net1\\" id: \\"abc123\\"" -j ACCEPT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net1\\" id: \\"abc123\\"" -m multiport --dports 18080 -j CNI-DN-d7e073bb950625e04dbb2
COMMIT
`;

Deno.test("splitRule() unquotes iptables-save's quoted arguments", () => {
  assert.deepEqual(splitRule('-A X -m comment --comment "name: \\"n\\" id: \\"c\\"" -j Y'), [
    "-A",
    "X",
    "-m",
    "comment",
    "--comment",
    'name: "n" id: "c"',
    "-j",
    "Y",
  ]);
});

Deno.test("findCniRules() finds the masquerade and dnat jumps of each attachment", () => {
  const rules = findCniRules(SAVE);
  assert.deepEqual(rules.map((r) => [r.chain, r.network, r.containerId, r.target]), [
    ["POSTROUTING", "net1", "abc123", "CNI-d7e073bb950625e04dbb2725"],
    ["CNI-HOSTPORT-DNAT", "net1", "abc123", "CNI-DN-d7e073bb950625e04dbb2"],
  ]);
  assert.deepEqual(rules[0]!.args, [
    "-s",
    "10.231.7.9/32",
    "-m",
    "comment",
    "--comment",
    'name: "net1" id: "abc123"',
    "-j",
    "CNI-d7e073bb950625e04dbb2725",
  ]);
});
