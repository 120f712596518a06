import assert from "node:assert/strict";
import { isInvalidArgument } from "./errors.ts";
import { resolveUser } from "./user.ts";

const passwd = `# accounts
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh

nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;

const group = `root:x:0:
wheel:x:10:root,app
app:x:1000:
audio:x:29:app
staff:x:50:
`;

const files = { passwd, group };

Deno.test("resolveUser() resolves names, ids and groups like Docker", () => {
  const cases: Array<{ user: string | undefined; groupAdd?: string[]; want: number[][] }> = [
    // [uid, gid], additionalGids
    { user: undefined, want: [[0, 0], [0, 10]] },
    { user: "", want: [[0, 0], [0, 10]] },
    { user: "root", want: [[0, 0], [0, 10]] },
    { user: "app", want: [[1000, 1000], [1000, 10, 29]] },
    { user: "1000", want: [[1000, 1000], [1000, 10, 29]] },
    { user: "app:staff", want: [[1000, 50], [50]] },
    { user: "app:50", want: [[1000, 50], [50]] },
    { user: "1000:4242", want: [[1000, 4242], [4242]] },
    { user: "4242", want: [[4242, 0], [0]] },
    { user: "4242:4242", want: [[4242, 4242], [4242]] },
    { user: "nobody", want: [[65534, 65534], [65534]] },
    {
      user: "app",
      groupAdd: ["staff", "29", "777"],
      want: [[1000, 1000], [1000, 10, 29, 50, 29, 777]],
    },
    { user: "daemon", groupAdd: ["staff", "staff"], want: [[1, 1], [1, 50]] },
  ];
  for (const { user, groupAdd, want } of cases) {
    const got = resolveUser(user, files, groupAdd);
    assert.deepEqual([[got.uid, got.gid], got.additionalGids], want, `user ${user} ${groupAdd}`);
  }
});

Deno.test("resolveUser() refuses names it cannot find, with Docker's messages", () => {
  const cases: Array<{ user: string; groupAdd?: string[]; message: string }> = [
    { user: "ghost", message: "unable to find user ghost: no matching entries in passwd file" },
    {
      user: "app:ghosts",
      message: "unable to find group ghosts: no matching entries in group file",
    },
    {
      user: "app",
      groupAdd: ["ghosts"],
      message: "Unable to find group ghosts: no matching entries in group file",
    },
    { user: "-1", message: "uids and gids must be in range 0-2147483647" },
    { user: "0:4294967296", message: "uids and gids must be in range 0-2147483647" },
  ];
  for (const { user, groupAdd, message } of cases) {
    assert.throws(
      () => resolveUser(user, files, groupAdd),
      (err: unknown) => isInvalidArgument(err) && (err as Error).message === message,
      user,
    );
  }
});

Deno.test("resolveUser() accepts numeric ids when the image has no account files", () => {
  assert.deepEqual(resolveUser("123:456", {}), { uid: 123, gid: 456, additionalGids: [456] });
  assert.deepEqual(resolveUser(undefined, {}), { uid: 0, gid: 0, additionalGids: [0] });
  assert.throws(() => resolveUser("app", {}), isInvalidArgument);
});
