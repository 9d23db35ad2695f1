import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RoomcastClient, TOKEN_SUBPROTOCOL_PREFIX, TokenError, type WebSocketLike } from "../src/index.js";
import { SessionEndedError, UsersClient, UsersError, type SessionTokens, type TokenStorage } from "../src/users.js";

// A small stand-in for the auth service's end-user endpoints of app "shop"
// (docs/users-api.md): rotating refresh tokens with reuse detection, unsigned
// JWT access tokens with iat and exp. Enough for the SDK's shapes and its
// refresh handling; the real service is tested in tests/e2e.

const USER_ID = "uabcdefghijklmnopqrst";

/** The server's clock: real time, while tests move the SDK's Date. */
const serverNow = () => performance.timeOrigin + performance.now();

interface Req {
  method: string;
  path: string;
  bearer: string;
  body: Record<string, unknown> | undefined;
}

class FakeAuth {
  server!: Server;
  url = "";
  requests: Req[] = [];
  refreshes = 0;
  mfa = ""; // sign-in answers with an MFA challenge of this method
  access = new Map<string, string>(); // access token → session id
  refreshTokens = new Map<string, { session: string; retired: boolean }>();
  revoked = new Set<string>();
  failures = new Map<string, { status: number; code: string; retryAfter?: string }[]>();
  /** While set, /refresh answers wait for it. */
  hold: Promise<void> | null = null;
  private n = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  failNext(path: string, status: number, code: string, retryAfter?: string): void {
    const q = this.failures.get(path) ?? [];
    q.push({ status, code, retryAfter });
    this.failures.set(path, q);
  }

  last(path: string): Req {
    const r = [...this.requests].reverse().find((q) => q.path === path);
    if (!r) throw new Error(`no request to ${path}`);
    return r;
  }

  private jwt(): string {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(serverNow() / 1000);
    return `${enc({ alg: "EdDSA" })}.${enc({ sub: USER_ID, iat: now, exp: now + 300, jti: ++this.n })}.c2ln`;
  }

  private issue(res: ServerResponse, sid: string): void {
    json(res, 200, this.newSession(sid));
  }

  /** A session answer with new tokens for session id sid. */
  private newSession(sid: string): SessionTokens {
    const at = this.jwt();
    const rt = `rt_${++this.n}_${Math.random().toString(36).slice(2)}`;
    this.access.set(at, sid);
    this.refreshTokens.set(rt, { session: sid, retired: false });
    return {
      user: { id: USER_ID, email: "ada@example.com", email_verified: true, anonymous: false, mfa: [], created_at: "2026-11-23T10:00:00Z" },
      session_id: sid,
      access_token: at,
      access_expires_at: new Date(serverNow() + 300_000).toISOString(),
      refresh_token: rt,
      refresh_expires_at: new Date(serverNow() + 3_600_000).toISOString(),
    };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const prefix = "/v1/apps/shop/auth";
    const url = new URL(req.url ?? "/", "http://x");
    if (!url.pathname.startsWith(prefix)) return err(res, 404, "not_found");
    const path = url.pathname.slice(prefix.length);
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
    const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    this.requests.push({ method: req.method ?? "", path, bearer, body });
    if (path === "/refresh") this.refreshes++;
    const f = this.failures.get(path)?.shift();
    if (f) {
      if (f.retryAfter) res.setHeader("Retry-After", f.retryAfter);
      return err(res, f.status, f.code);
    }
    if (path === "/refresh" && this.hold) await this.hold;

    let sid = "";
    if (bearer) {
      sid = this.access.get(bearer) ?? "";
      if (!sid || this.revoked.has(sid)) return err(res, 401, "unauthorized");
    }
    const newSid = () => `s${++this.n}`;
    switch (`${req.method} ${path}`) {
      case "POST /signup":
      case "POST /verify/resend":
      case "POST /signin/code":
      case "POST /password/reset":
        return json(res, 202, { status: "verification_sent" });
      case "POST /verify":
      case "POST /password/reset/confirm":
      case "POST /anonymous":
      case "POST /mfa/challenge":
        return this.issue(res, newSid());
      case "POST /signin":
      case "POST /signin/code/verify":
      case "POST /oauth/exchange":
        if (this.mfa) return json(res, 200, { mfa_required: true, mfa_token: "mfa-1", methods: [this.mfa] });
        return this.issue(res, newSid());
      case "POST /refresh": {
        const rt = this.refreshTokens.get(String(body?.refresh_token));
        if (!rt || this.revoked.has(rt.session)) return err(res, 401, "invalid_credentials");
        if (rt.retired) {
          this.revoked.add(rt.session); // reuse: the whole family goes
          return err(res, 401, "refresh_reused");
        }
        rt.retired = true;
        return this.issue(res, rt.session);
      }
      case "POST /signout": {
        const rt = this.refreshTokens.get(String(body?.refresh_token));
        if (rt) this.revoked.add(rt.session);
        else if (sid) this.revoked.add(sid);
        res.writeHead(204).end();
        return;
      }
    }
    if (!sid && body?.mfa_token === "mfa-1") {
      if (path === "/mfa/totp/enroll") return json(res, 200, { secret: "JBSWY3DPEHPK3PXP", otpauth_uri: "otpauth://totp/shop:ada", qr_png: "" });
      if (path === "/mfa/totp/confirm") return json(res, 200, { recovery_codes: ["aaaa-bbbb"], session: this.newSession(newSid()) });
    }
    if (!sid) return err(res, 401, "unauthorized");
    switch (`${req.method} ${path}`) {
      case "GET /me":
        return json(res, 200, { id: USER_ID, email: "ada@example.com", email_verified: true, anonymous: false, mfa: ["totp"], created_at: "2026-11-23T10:00:00Z" });
      case "GET /sessions":
        return json(res, 200, { sessions: [{ id: sid, created_at: "2026-11-23T10:00:00Z", last_used_at: "2026-11-23T10:01:00Z", user_agent: "node", ip: "127.0.0.1", current: true }] });
      case "POST /upgrade":
        return json(res, 202, { status: "verification_sent" });
      case "POST /mfa/totp/enroll":
        return json(res, 200, { secret: "JBSWY3DPEHPK3PXP", otpauth_uri: "otpauth://totp/shop:ada?secret=JBSWY3DPEHPK3PXP", qr_png: "iVBORw0KGgo=" });
      case "POST /mfa/totp/confirm":
        return json(res, 200, { recovery_codes: ["aaaa-bbbb", "cccc-dddd"] });
      case "POST /mfa/totp/disable":
        res.writeHead(204).end();
        return;
    }
    if (req.method === "DELETE" && path.startsWith("/sessions/")) {
      this.revoked.add(decodeURIComponent(path.slice("/sessions/".length)));
      res.writeHead(204).end();
      return;
    }
    err(res, 404, "not_found");
  }
}

function json(res: ServerResponse, status: number, v: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(v));
}

function err(res: ServerResponse, status: number, code: string): void {
  json(res, status, { error: { code, message: `${code} (fake)` } });
}

class MemoryStorage implements TokenStorage {
  map = new Map<string, string>();
  get(k: string) {
    return this.map.get(k) ?? null;
  }
  set(k: string, v: string) {
    this.map.set(k, v);
  }
  remove(k: string) {
    this.map.delete(k);
  }
}

const KEY = "roomcast.users.shop.refresh_token";

let fake: FakeAuth;
beforeEach(async () => {
  fake = new FakeAuth();
  await fake.start();
});
afterEach(async () => {
  vi.useRealTimers();
  await fake.stop();
});

/** Moves the SDK's clock (Date only; timers and sockets stay real). */
function advance(ms: number): void {
  vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + ms });
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("promise resolved, want a rejection");
}

describe("UsersClient", () => {
  it("sends the documented requests and reads the answers", async () => {
    const users = new UsersClient({ authUrl: fake.url + "/", app: "shop" });
    await users.signUp("ada@example.com", "correct horse");
    expect(fake.last("/signup")).toMatchObject({ method: "POST", body: { email: "ada@example.com", password: "correct horse" } });
    const s = (await users.verify("ada@example.com", "123456")).session!;
    expect(fake.last("/verify").body).toEqual({ email: "ada@example.com", code: "123456" });
    expect(s.user.id).toBe(USER_ID);
    expect(s.id).toMatch(/^s/);
    expect(s.tokens.refresh_token).toMatch(/^rt_/);

    await users.resendVerification("ada@example.com");
    await users.signInCode("ada@example.com");
    await users.resetPassword("ada@example.com");
    for (const p of ["/verify/resend", "/signin/code", "/password/reset"]) expect(fake.last(p).body).toEqual({ email: "ada@example.com" });
    await users.confirmPasswordReset("ada@example.com", "654321", "new password");
    expect(fake.last("/password/reset/confirm").body).toEqual({ email: "ada@example.com", code: "654321", password: "new password" });
    expect((await users.verifySignInCode("ada@example.com", "111111")).session).toBeDefined();

    const anon = await users.anonymous();
    await anon.upgrade("bob@example.com", "pw pw pw pw");
    expect(fake.last("/upgrade")).toMatchObject({ bearer: anon.tokens.access_token, body: { email: "bob@example.com", password: "pw pw pw pw" } });

    expect(await s.me()).toMatchObject({ id: USER_ID, mfa: ["totp"] });
    expect(fake.last("/me")).toMatchObject({ method: "GET", bearer: s.tokens.access_token });
    expect(await s.sessions()).toEqual([expect.objectContaining({ id: s.id, current: true })]);
    expect((await s.enrollTotp()).otpauth_uri).toMatch(/^otpauth:/);
    expect(await s.confirmTotp("123456")).toHaveLength(2);
    await s.disableTotp("123456");
    expect(fake.last("/mfa/totp/disable").body).toEqual({ code: "123456" });

    await s.revokeSession(anon.id);
    expect(fake.last(`/sessions/${anon.id}`).method).toBe("DELETE");
    expect(s.error).toBeNull();
    await s.revokeSession(s.id);
    expect(await rejection(s.getAccessToken())).toBeInstanceOf(SessionEndedError);

    const u = new URL(users.oauthStartUrl("google", "https://app.example.com/cb?x=1"));
    expect(u.pathname).toBe("/v1/apps/shop/auth/oauth/google/start");
    expect(u.searchParams.get("redirect_uri")).toBe("https://app.example.com/cb?x=1");
  });

  it("answers an MFA challenge with a TOTP or a recovery code", async () => {
    fake.mfa = "totp";
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const r = await users.signIn("ada@example.com", "pw");
    expect(r.session).toBeUndefined();
    expect(r.mfa).toEqual({ mfa_token: "mfa-1", methods: ["totp"] });
    await users.challengeMfa(r.mfa!, "123456");
    expect(fake.last("/mfa/challenge").body).toEqual({ mfa_token: "mfa-1", code: "123456" });
    await users.challengeMfaRecovery(r.mfa!, "aaaa-bbbb");
    expect(fake.last("/mfa/challenge").body).toEqual({ mfa_token: "mfa-1", recovery_code: "aaaa-bbbb" });
    expect((await users.exchange("lc-1")).mfa).toBeDefined();
    expect(fake.last("/oauth/exchange").body).toEqual({ login_code: "lc-1" });
  });

  it("enrolls TOTP with the mfa_token when the app requires a second factor", async () => {
    fake.mfa = "totp_enroll";
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const r = await users.signIn("ada@example.com", "pw");
    expect(r.mfa?.methods).toEqual(["totp_enroll"]);
    expect((await users.enrollMfa(r.mfa!)).secret).toBe("JBSWY3DPEHPK3PXP");
    expect(fake.last("/mfa/totp/enroll")).toMatchObject({ bearer: "", body: { mfa_token: "mfa-1" } });
    const { session, recoveryCodes } = await users.confirmMfaEnrollment(r.mfa!, "123456");
    expect(fake.last("/mfa/totp/confirm")).toMatchObject({ bearer: "", body: { mfa_token: "mfa-1", code: "123456" } });
    expect(recoveryCodes).toEqual(["aaaa-bbbb"]);
    expect((await session.me()).id).toBe(USER_ID);
  });

  it("reports the API's error code and Retry-After", async () => {
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    fake.failNext("/signin", 401, "invalid_credentials");
    const e1 = (await rejection(users.signIn("ada@example.com", "wrong"))) as UsersError;
    expect(e1).toBeInstanceOf(UsersError);
    expect([e1.status, e1.code, e1.retryAfter]).toEqual([401, "invalid_credentials", 0]);
    fake.failNext("/signin", 429, "rate_limited", "7");
    const e2 = (await rejection(users.signIn("ada@example.com", "wrong"))) as UsersError;
    expect([e2.status, e2.code, e2.retryAfter]).toEqual([429, "rate_limited", 7000]);
  });
});

describe("UserSession", () => {
  it("refreshes a due token once for all concurrent callers", async () => {
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    const old = { ...s.tokens };
    const refreshed: SessionTokens[] = [];
    s.on("refreshed", (t) => refreshed.push(t));
    // Not due yet: no request.
    expect(await s.getToken()).toBe(old.access_token);
    expect(fake.refreshes).toBe(0);

    advance(290_000); // 10 s of 5 minutes left: due
    let release!: () => void;
    fake.hold = new Promise((r) => (release = r));
    const calls = Array.from({ length: 20 }, (_, i) => (i % 2 ? s.getToken() : s.getAccessToken()));
    await vi.waitFor(() => expect(fake.refreshes).toBe(1));
    release();
    const toks = await Promise.all(calls);
    expect(new Set(toks).size).toBe(1);
    expect(toks[0]).not.toBe(old.access_token);
    expect(fake.refreshes).toBe(1);
    expect(fake.last("/refresh").body).toEqual({ refresh_token: old.refresh_token });
    expect(s.id).toBe(old.session_id);
    expect(refreshed).toHaveLength(1);
    // The new token is timed by the local clock from its own iat/exp: with the
    // clock 290 s ahead of the server it is still fresh, not due again.
    expect(await s.getToken()).toBe(toks[0]);
    expect(fake.refreshes).toBe(1);
  });

  it("ends on a reused refresh token (and the thief's session with it)", async () => {
    const storage = new MemoryStorage();
    const users = new UsersClient({ authUrl: fake.url, app: "shop", storage });
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    const ended: SessionEndedError[] = [];
    s.on("ended", (e) => ended.push(e));
    const stolen = s.tokens.refresh_token;
    expect(storage.get(KEY)).toBe(stolen);

    const thief = await new UsersClient({ authUrl: fake.url, app: "shop" }).restore(stolen);
    expect(thief!.id).toBe(s.id);

    const e = (await rejection(s.refresh())) as SessionEndedError;
    expect(e).toBeInstanceOf(SessionEndedError);
    expect((e.cause as UsersError).code).toBe("refresh_reused");
    expect(ended).toEqual([e]);
    expect(storage.get(KEY)).toBeNull();
    const n = fake.refreshes;
    expect(await rejection(s.getToken())).toBe(e);
    expect(await rejection(s.me())).toBe(e);
    expect(fake.refreshes).toBe(n); // an ended session does not ask again

    const e2 = (await rejection(thief!.refresh())) as SessionEndedError;
    expect((e2.cause as UsersError).code).toBe("invalid_credentials");
  });

  it("keeps the session and its valid token when a refresh fails for a passing reason", async () => {
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    const cur = s.tokens.access_token;
    advance(290_000);
    fake.failNext("/refresh", 503, "unavailable");
    expect(await s.getToken()).toBe(cur);
    expect(s.error).toBeNull();
    const next = await s.getToken();
    expect(next).not.toBe(cur);
    expect(fake.refreshes).toBe(2);
  });

  it("refreshes once and retries a bearer call answered 401", async () => {
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    fake.failNext("/me", 401, "unauthorized");
    expect((await s.me()).id).toBe(USER_ID);
    expect(fake.refreshes).toBe(1);
    // Revoked elsewhere: the refresh is refused and the session ends.
    const other = (await users.signIn("ada@example.com", "pw")).session!;
    await other.revokeSession(s.id);
    const e = (await rejection(s.me())) as SessionEndedError;
    expect(e).toBeInstanceOf(SessionEndedError);
    expect((e.cause as UsersError).code).toBe("invalid_credentials");
  });

  it("signs out: the refresh token stops working and storage forgets it", async () => {
    const storage = new MemoryStorage();
    const users = new UsersClient({ authUrl: fake.url, app: "shop", storage });
    expect(await users.restore()).toBeNull();
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    const rt = s.tokens.refresh_token;
    await s.signOut();
    expect(fake.last("/signout").body).toEqual({ refresh_token: rt });
    expect(storage.get(KEY)).toBeNull();
    expect(s.tokens.refresh_token).toBe("");
    await s.signOut(); // again: nothing to do
    expect(await rejection(s.getToken())).toBeInstanceOf(SessionEndedError);
    storage.set(KEY, rt);
    expect(((await rejection(users.restore())) as UsersError).code).toBe("invalid_credentials");
    expect(storage.get(KEY)).toBeNull(); // a refused token is not kept
  });

  it("restores a session from storage after a reload", async () => {
    const storage = new MemoryStorage();
    const s1 = (await new UsersClient({ authUrl: fake.url, app: "shop", storage }).signIn("ada@example.com", "pw")).session!;
    const s2 = (await new UsersClient({ authUrl: fake.url, app: "shop", storage }).restore())!;
    expect(s2.id).toBe(s1.id);
    expect(fake.last("/refresh").body).toEqual({ refresh_token: s1.tokens.refresh_token });
    expect(storage.get(KEY)).toBe(s2.tokens.refresh_token);
  });

  it("is the realtime client's token source", async () => {
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    const offered: string[][] = [];
    // A WebSocket that records the offered subprotocols and is refused.
    class RefusingWebSocket implements WebSocketLike {
      readyState = 0;
      protocol = "";
      onopen: ((ev: unknown) => void) | null = null;
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      onclose: ((ev: { code: number; reason: string }) => void) | null = null;
      onerror: ((ev: unknown) => void) | null = null;
      constructor(_url: string, protocols?: string | string[]) {
        offered.push([protocols ?? []].flat());
        setTimeout(() => this.onclose?.({ code: 4001, reason: "test" }), 0);
      }
      send(): void {}
      close(): void {}
    }
    const rt = new RoomcastClient({ url: "ws://127.0.0.1:1/v1/connect", getToken: s.getToken, WebSocket: RefusingWebSocket, reconnect: false });
    await rejection(rt.connect());
    expect(offered[0]).toContain(TOKEN_SUBPROTOCOL_PREFIX + s.tokens.access_token);

    await s.signOut();
    const rt2 = new RoomcastClient({ url: "ws://127.0.0.1:1/v1/connect", getToken: s.getToken, WebSocket: RefusingWebSocket, reconnect: false });
    const e = (await rejection(rt2.connect())) as TokenError;
    expect(e).toBeInstanceOf(TokenError);
    expect(e.cause).toBeInstanceOf(SessionEndedError);
    expect(offered).toHaveLength(1);
  });

  it("ends a reconnecting realtime client once the session has ended", async () => {
    const users = new UsersClient({ authUrl: fake.url, app: "shop" });
    const s = (await users.signIn("ada@example.com", "pw")).session!;
    const sockets: AcceptingWebSocket[] = [];
    // A WebSocket whose gateway accepts the connection (JSON codec).
    class AcceptingWebSocket implements WebSocketLike {
      readyState = 0;
      protocol = "";
      onopen: ((ev: unknown) => void) | null = null;
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      onclose: ((ev: { code: number; reason: string }) => void) | null = null;
      onerror: ((ev: unknown) => void) | null = null;
      constructor(_url: string, _protocols?: string | string[]) {
        sockets.push(this);
        setTimeout(() => {
          this.readyState = 1;
          this.onopen?.({});
          const hello = { type: "connected", connection_id: "c", session_id: "s", resume_token: "t", client_id: "u", node: "n", heartbeat_ms: 25000 };
          this.onmessage?.({ data: JSON.stringify(hello) });
        });
      }
      send(): void {}
      close(): void {
        this.readyState = 3;
      }
      drop(): void {
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: "" });
      }
    }
    const rt = new RoomcastClient({ url: "ws://gateway.test/v1/connect", getToken: s.getToken, WebSocket: AcceptingWebSocket, reconnectBaseDelay: 1, reconnectMaxDelay: 5 });
    const states: string[] = [];
    rt.on("state", (st) => states.push(st.state));
    await rt.connect();
    await s.signOut();
    sockets[0]!.drop(); // the network goes; reconnecting needs a token the session can't give
    await vi.waitFor(() => expect(states.at(-1)).toBe("closed"), { timeout: 2000 });
    expect(states.filter((st) => st === "reconnecting").length).toBeLessThanOrEqual(1);
    expect(sockets).toHaveLength(1);
  });
});
