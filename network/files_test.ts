import assert from "node:assert/strict";
import {
  DEFAULT_NAMESERVERS,
  parseExtraHosts,
  renderHostNetworkHosts,
  renderHosts,
  renderResolvConf,
} from "./files.ts";

Deno.test("renderHosts() lists localhost, the container, --add-host entries and peers", () => {
  const text = renderHosts({
    hostname: "web",
    domainname: "example.test",
    address: "10.1.0.2",
    extraHosts: ["db.test:10.2.2.2", "v6:[::1]"],
    peers: [{ address: "10.1.0.3", names: ["api", "api-alias"] }],
  });
  const lines = text.trimEnd().split("\n");
  assert.equal(lines[0], "127.0.0.1\tlocalhost");
  assert.ok(lines.includes("10.1.0.2\tweb.example.test web"));
  assert.ok(lines.includes("10.2.2.2\tdb.test"));
  assert.ok(lines.includes("::1\tv6"));
  assert.equal(lines.at(-1), "10.1.0.3\tapi api-alias");
});

Deno.test("renderHosts() maps the hostname to 127.0.1.1 without an address (--net none)", () => {
  assert.match(renderHosts({ hostname: "lonely" }), /^127\.0\.1\.1\tlonely$/m);
});

Deno.test("parseExtraHosts() refuses entries without name or address", () => {
  assert.throws(() => parseExtraHosts(["nocolon"]), /want name:address/);
  assert.throws(() => parseExtraHosts([":10.0.0.1"]), /want name:address/);
});

Deno.test("renderHostNetworkHosts() appends --add-host to the host's file", () => {
  assert.equal(
    renderHostNetworkHosts("127.0.0.1 localhost", ["x:10.0.0.9"]),
    "127.0.0.1 localhost\n10.0.0.9\tx\n",
  );
});

const HOST_RESOLV = "nameserver 127.0.0.53\nnameserver 10.9.9.9\nsearch corp.test\n" +
  "options edns0\n";

Deno.test("renderResolvConf() drops loopback nameservers and keeps the rest of the host's", () => {
  assert.equal(
    renderResolvConf({ host: HOST_RESOLV }),
    "nameserver 10.9.9.9\nsearch corp.test\noptions edns0\n",
  );
});

Deno.test("renderResolvConf() falls back to Docker's resolvers when only loopback ones exist", () => {
  const text = renderResolvConf({ host: "nameserver 127.0.0.1\n" });
  assert.equal(text, DEFAULT_NAMESERVERS.map((ns) => `nameserver ${ns}\n`).join(""));
});

Deno.test("renderResolvConf() uses --dns, --dns-search and --dns-option when given", () => {
  assert.equal(
    renderResolvConf({
      host: HOST_RESOLV,
      dns: ["10.1.1.1"],
      dnsSearch: ["a.test", "b.test"],
      dnsOptions: ["ndots:2"],
    }),
    "nameserver 10.1.1.1\nsearch a.test b.test\noptions ndots:2\n",
  );
  assert.doesNotMatch(renderResolvConf({ host: HOST_RESOLV, dnsSearch: ["."] }), /search/);
});

Deno.test("renderResolvConf() keeps loopback resolvers in the host's network", () => {
  assert.match(renderResolvConf({ host: HOST_RESOLV, hostNetwork: true }), /127\.0\.0\.53/);
});
