// End users through the TypeScript SDK (UsersClient, in Node) against the
// real auth service of `roomcast run`: sign-up, the mailed code (read from
// the log sender's line), verify, sign-in, me and sessions; concurrent
// getToken() calls on a due token share one refresh (a second request with
// the same refresh token would be reuse and end the session); sign-out; a
// reused refresh token ends the session. The realtime side of a user
// session is covered by the Go e2e test (tests/e2e/users_sdk_test.go) and
// the SDK's unit tests: Node 20 has no WebSocket to run it here.
import { SessionEndedError, UsersClient, UsersError } from "@roomcast/client";
import { afterAll, afterEach, beforeAll, expect, test, vi } from "vitest";
import { Platform, type Proc, waitFor } from "./platform.js";

let platform: Platform;
let node: Awaited<ReturnType<Platform["roomcastRun"]>>;
let app = "";

beforeAll(async () => {
  platform = await Platform.create();
  node = await platform.roomcastRun("gw-users", { devKey: true });
  // The dev key "<app>.<keyId>:<secret>" becomes the app's user-policy key.
  const m = /^([^.]+)\.([^:]+):/.exec(node.devKey);
  if (!m || !node.adminToken) throw new Error(`no dev key or admin token in the banner:\n${node.proc.logs.slice(-2000)}`);
  app = m[1]!;
  const res = await fetch(`${node.authURL}/admin/v1/apps/${app}/user-policy`, {
    method: "PUT",
    headers: { authorization: `Bearer ${node.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ key: m[2], caps: { "chat.*": ["join", "publish"] }, signup: true, anonymous: true, access_ttl: "1m" }),
  });
  if (!res.ok) throw new Error(`PUT user-policy: ${res.status} ${await res.text()}`);
});

afterEach(() => {
  vi.useRealTimers();
});

afterAll(async () => {
  await platform?.cleanup();
});

/** The codes of kind mailed to `to` so far, from the log sender's lines. */
function mailCodes(proc: Proc, to: string, kind: string): string[] {
  const codes: string[] = [];
  for (const line of proc.logs.split("\n")) {
    try {
      const l = JSON.parse(line) as { msg?: string; to?: string; kind?: string; code?: string };
      if (l.msg?.startsWith("mail") && l.to === to && l.kind === kind && l.code) codes.push(l.code);
    } catch {
      // not a JSON log line
    }
  }
  return codes;
}

test("sign-up, verify, sign-in, one refresh for concurrent callers, sign-out", async () => {
  const users = new UsersClient({ authUrl: node.authURL, app });
  const email = "ada@example.com";
  const password = "correct horse battery staple";
  await users.signUp(email, password);
  const code = await waitFor("the verification code in the log", 10000, () => mailCodes(node.proc, email, "verify")[0]);
  const verified = (await users.verify(email, code)).session!;
  expect(verified.user).toMatchObject({ email, email_verified: true, anonymous: false });

  const wrong = await users.signIn(email, "wrong password").catch((e: unknown) => e);
  expect(wrong).toBeInstanceOf(UsersError);
  expect((wrong as UsersError).code).toBe("invalid_credentials");

  const s = (await users.signIn(email, password)).session!;
  expect(s.user.id).toBe(verified.user.id);
  expect(s.user.id).toMatch(/^u/);
  expect(await s.me()).toMatchObject({ id: s.user.id, email });
  const list = await s.sessions();
  expect(list.map((x) => x.id).sort()).toEqual([s.id, verified.id].sort());
  expect(list.find((x) => x.current)?.id).toBe(s.id);

  // 55 s later by the SDK's clock, the 1-minute token is due: ten callers
  // share one refresh (a second request would be reuse and end the session).
  const before = { ...s.tokens };
  vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 55_000 });
  const toks = await Promise.all(Array.from({ length: 10 }, () => s.getToken()));
  expect(new Set(toks).size).toBe(1);
  expect(toks[0]).not.toBe(before.access_token);
  expect(s.tokens.refresh_token).not.toBe(before.refresh_token);
  expect(s.id).toBe(before.session_id);
  expect(s.error).toBeNull();
  expect((await s.me()).id).toBe(s.user.id); // the new token works
  vi.useRealTimers();

  const last = s.tokens.refresh_token;
  await s.signOut();
  const refused = await users.restore(last).catch((e: unknown) => e);
  expect((refused as UsersError).code).toBe("invalid_credentials");
  expect(await s.getToken().catch((e: unknown) => e)).toBeInstanceOf(SessionEndedError);
  expect((await verified.me()).id).toBe(s.user.id); // the other session lives on
});

test("a reused refresh token ends the session", async () => {
  const users = new UsersClient({ authUrl: node.authURL, app });
  const s = await users.anonymous();
  expect(s.user.anonymous).toBe(true);
  const stolen = s.tokens.refresh_token;
  await s.refresh();
  const reused = await users.restore(stolen).catch((e: unknown) => e);
  expect((reused as UsersError).code).toBe("refresh_reused");
  const ended = (await s.refresh().catch((e: unknown) => e)) as SessionEndedError;
  expect(ended).toBeInstanceOf(SessionEndedError);
  expect((ended.cause as UsersError).code).toBe("invalid_credentials");
});
