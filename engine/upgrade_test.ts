import assert from "node:assert/strict";
import { isInvalidArgument, messageOf } from "./errors.ts";
import { planUpgrade, type UpgradeSubject } from "./upgrade.ts";

const subject = (userConfig: UpgradeSubject["userConfig"]): UpgradeSubject => ({
  userConfig: { Image: "app:1", ...userConfig },
  hostConfig: { Binds: ["data:/data", "/srv/logs:/logs:ro"], Memory: 64 << 20, NetworkMode: "web" },
  imageId: "sha256:old",
});

Deno.test("planUpgrade() applies the entrypoint rule in its three cases", () => {
  const newImage = { newImageId: "sha256:new" };
  // A new entrypoint wins.
  const given = planUpgrade(subject({ Entrypoint: ["/old"] }), {
    Image: "app:2",
    Entrypoint: ["/new"],
  }, newImage);
  assert.deepEqual(given.userConfig.Entrypoint, ["/new"]);
  // One the user gave the old container is kept.
  const kept = planUpgrade(
    subject({ Entrypoint: ["/old"], Cmd: ["a"] }),
    { Image: "app:2" },
    newImage,
  );
  assert.deepEqual(kept.userConfig.Entrypoint, ["/old"]);
  assert.deepEqual(kept.userConfig.Cmd, ["a"]);
  // Inherited ones are left absent, so the new image's apply.
  const inherited = planUpgrade(subject({}), { Image: "app:2" }, newImage);
  assert.equal(inherited.userConfig.Entrypoint, undefined);
  assert.equal(inherited.userConfig.Cmd, undefined);
  assert.equal(inherited.userConfig.Image, "app:2");
  // The command on its own.
  const cmd = planUpgrade(subject({ Cmd: ["old"] }), { Image: "app:2", Cmd: ["new"] }, newImage);
  assert.deepEqual(cmd.userConfig.Cmd, ["new"]);
});

Deno.test("planUpgrade() merges env and labels by key, binds by destination, keeps the rest", () => {
  const plan = planUpgrade(subject({ Env: ["A=1", "B=2"], Labels: { app: "x", tier: "db" } }), {
    Image: "app:2",
    Env: ["B=3", "C=4"],
    Labels: { tier: "cache" },
    HostConfig: { Binds: ["/srv/new:/logs", "more:/more"], Memory: 128 << 20 },
  }, { newImageId: "sha256:new" });
  assert.deepEqual(plan.userConfig.Env, ["A=1", "B=3", "C=4"]);
  assert.deepEqual(plan.userConfig.Labels, { app: "x", tier: "cache" });
  assert.deepEqual(plan.hostConfig.Binds, ["data:/data", "/srv/new:/logs", "more:/more"]);
  assert.equal(plan.hostConfig.Memory, 128 << 20);
  assert.equal(plan.hostConfig.NetworkMode, "web");
});

Deno.test("planUpgrade() refuses no change, no image, and host settings it cannot change", () => {
  const refused = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (err: unknown) => isInvalidArgument(err) && pattern.test(messageOf(err)));
  refused(
    () => planUpgrade(subject({}), { Image: "app:1" }, { newImageId: "sha256:old" }),
    /image not changed/,
  );
  // The same image with another setting is an upgrade.
  const env = planUpgrade(subject({}), { Image: "app:1", Env: ["X=1"] }, {
    newImageId: "sha256:old",
  });
  assert.deepEqual(env.userConfig.Env, ["X=1"]);
  refused(() => planUpgrade(subject({}), {}, { newImageId: "x" }), /needs an image/);
  refused(
    () =>
      planUpgrade(subject({}), { Image: "app:2", HostConfig: { NetworkMode: "host" } }, {
        newImageId: "sha256:new",
      }),
    /cannot change HostConfig.NetworkMode/,
  );
});
