/**
 * End users of an app (docs/users-api.md): sign-up and email verification,
 * sign-in with a password or an emailed code, TOTP multi-factor, password
 * reset, anonymous users and their upgrade, OAuth/OIDC sign-in, and
 * sessions whose short-lived access token refreshes itself and is the
 * realtime client's token source.
 *
 * ```ts
 * const users = new UsersClient({ authUrl: "https://auth.example.com", app: "shop" });
 * const r = await users.signIn("ada@example.com", password);
 * const session = r.mfa ? await users.challengeMfa(r.mfa, totpCode) : r.session;
 * const rt = new RoomcastClient({ url: "wss://rt.example.com/v1/connect", getToken: session.getToken });
 * ```
 *
 * Uses `fetch` (browsers, Node ≥ 20). Nothing is retried by the SDK: these
 * calls carry secrets and send mail, and the server rate-limits them.
 */
import { Emitter } from "./emitter.js";
import { RoomcastError } from "./errors.js";

/** Error codes of the end-user endpoints (docs/users-api.md "Error codes") plus the shared ones. */
export const USERS_ERROR_CODES = [
  "invalid_credentials",
  "email_not_verified",
  "refresh_reused",
  "mfa_invalid",
  "weak_password",
  "signup_disabled",
  "oauth_failed",
  "rate_limited",
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "unavailable",
] as const;
export type UsersErrorCode = (typeof USERS_ERROR_CODES)[number];

/** A failure the auth service answered. Switch on `code`, never on the message. */
export class UsersError extends RoomcastError {
  override name = "UsersError";
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** Stable error code, e.g. "invalid_credentials" (see USERS_ERROR_CODES); "unknown" if the body had none. */
    readonly code: UsersErrorCode | (string & {}),
    message: string,
    /** Retry-After in ms (rate_limited), 0 if none. */
    readonly retryAfter = 0,
  ) {
    super(`roomcast users: ${status} ${code}: ${message}`);
  }
}

/**
 * The session can no longer give tokens: signed out or revoked, or the
 * server refused its refresh token (`cause` is the UsersError:
 * invalid_credentials — revoked, expired, blocked user — or refresh_reused —
 * someone else presented it, so the server revoked the whole session). The
 * user must sign in again.
 */
export class SessionEndedError extends RoomcastError {
  override name = "SessionEndedError";
  /** No token will come again: a token consumer should stop asking. */
  readonly terminal = true;
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

/** A user of the app. */
export interface User {
  /** "u" + 20 base32 characters: the client id at the gateway. */
  id: string;
  email?: string;
  email_verified: boolean;
  anonymous: boolean;
  /** Second factors, e.g. ["totp"] (null or absent: none). */
  mfa?: string[] | null;
  created_at: string;
}

/** A session answer as the server gives it. */
export interface SessionTokens {
  user: User;
  session_id: string;
  access_token: string;
  access_expires_at: string;
  refresh_token: string;
  refresh_expires_at: string;
}

/**
 * The answer to a correct first factor when a second one is needed. Methods
 * ["totp"]: answer with challengeMfa or challengeMfaRecovery. ["totp_enroll"]
 * (the app requires a second factor the user has not set up): enrollMfa,
 * then confirmMfaEnrollment.
 */
export interface MFAChallenge {
  mfa_token: string;
  methods: string[];
}

/** What sign-in endpoints answer: a session, or an MFA challenge to answer with challengeMfa. */
export type SignInResult = { session: UserSession; mfa?: undefined } | { session?: undefined; mfa: MFAChallenge };

/** One of the user's sessions (UserSession.sessions). */
export interface SessionInfo {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string;
  ip: string;
  /** The session that asked. */
  current: boolean;
}

/** A new TOTP secret to show; confirmTotp with a code from the authenticator turns it on. */
export interface TOTPEnrollment {
  secret: string;
  otpauth_uri: string;
  /** Base64 PNG of the otpauth URI's QR code (use as `data:image/png;base64,${qr_png}`). */
  qr_png: string;
}

/**
 * Keeps a session's refresh token across page loads or restarts: a
 * `localStorage` adapter, a keychain, a file. Methods may be async.
 */
export interface TokenStorage {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
  remove(key: string): void | Promise<void>;
}

export interface UsersClientOptions {
  /** The auth service's base URL, e.g. "https://auth.example.com". */
  authUrl: string;
  /** The app whose users these are. */
  app: string;
  /** fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /**
   * Where to keep the refresh token: saved after every sign-in and
   * refresh, removed when the session ends; `restore()` brings the session
   * back. Default: not kept. A refresh token is a long-lived credential:
   * prefer storage that scripts of other origins cannot read. With several
   * tabs sharing one storage, refresh in one tab only (the others would
   * present a retired token, which the server treats as theft).
   */
  storage?: TokenStorage;
  /** The storage key (default "roomcast.users.<app>.refresh_token"). */
  storageKey?: string;
  /** Bound on one refresh request in ms (default 30000). */
  refreshTimeout?: number;
}

/** Events of a UserSession. */
export type UserSessionEvents = {
  /** New tokens (after a refresh). */
  refreshed: (tokens: SessionTokens) => void;
  /** The session ended; `error` says why (SessionEndedError). */
  ended: (error: SessionEndedError) => void;
};

/** Calls one app's end-user endpoints. */
export class UsersClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  /** @internal */
  readonly opts: UsersClientOptions & { storageKey: string; refreshTimeout: number };

  constructor(options: UsersClientOptions) {
    if (!options.authUrl) throw new TypeError("roomcast users: authUrl is required");
    if (!options.app) throw new TypeError("roomcast users: app is required");
    this.opts = {
      ...options,
      storageKey: options.storageKey ?? `roomcast.users.${options.app}.refresh_token`,
      refreshTimeout: options.refreshTimeout ?? 30_000,
    };
    this.base = `${options.authUrl.replace(/\/+$/, "")}/v1/apps/${encodeURIComponent(options.app)}/auth`;
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError("roomcast users: no fetch available; pass options.fetch");
    this.fetchFn = (input, init) => f(input, init); // unbound window.fetch throws "Illegal invocation"
  }

  /** Creates a user and mails a verification code; the same answer for an existing email. */
  async signUp(email: string, password: string): Promise<void> {
    await this.request("POST", "/signup", { email, password });
  }

  /**
   * Checks the mailed verification code: verified and signed in (or an MFA
   * challenge when the app requires a second factor). Also completes `upgrade`.
   */
  async verify(email: string, code: string): Promise<SignInResult> {
    return this.signInAt("/verify", { email, code });
  }

  /** Mails a new verification code. */
  async resendVerification(email: string): Promise<void> {
    await this.request("POST", "/verify/resend", { email });
  }

  /**
   * Signs in with email and password. Wrong password, unknown email and a
   * blocked user all fail with invalid_credentials; email_not_verified
   * comes only after a correct password.
   */
  async signIn(email: string, password: string): Promise<SignInResult> {
    return this.signInAt("/signin", { email, password });
  }

  /** Mails a one-time sign-in code if the account exists (the answer does not say). */
  async signInCode(email: string): Promise<void> {
    await this.request("POST", "/signin/code", { email });
  }

  /** Signs in with the mailed code. */
  async verifySignInCode(email: string, code: string): Promise<SignInResult> {
    return this.signInAt("/signin/code/verify", { email, code });
  }

  /** Completes a sign-in with a TOTP code (mfa_invalid if wrong). */
  async challengeMfa(challenge: MFAChallenge, code: string): Promise<UserSession> {
    return this.sessionOnly("/mfa/challenge", { mfa_token: challenge.mfa_token, code });
  }

  /** Completes a sign-in with a recovery code (each works once). */
  async challengeMfaRecovery(challenge: MFAChallenge, recoveryCode: string): Promise<UserSession> {
    return this.sessionOnly("/mfa/challenge", { mfa_token: challenge.mfa_token, recovery_code: recoveryCode });
  }

  /** Starts TOTP enrollment for a challenge with methods ["totp_enroll"]: show the QR code, then confirmMfaEnrollment. */
  async enrollMfa(challenge: MFAChallenge): Promise<TOTPEnrollment> {
    return (await this.request("POST", "/mfa/totp/enroll", { mfa_token: challenge.mfa_token })) as TOTPEnrollment;
  }

  /** Turns TOTP on with a current code and finishes the sign-in; the recovery codes are shown once. */
  async confirmMfaEnrollment(challenge: MFAChallenge, code: string): Promise<{ session: UserSession; recoveryCodes: string[] }> {
    const r = (await this.request("POST", "/mfa/totp/confirm", { code, mfa_token: challenge.mfa_token })) as { recovery_codes: string[]; session?: SessionTokens };
    if (!r?.session?.access_token || !r.session.refresh_token) throw new RoomcastError("roomcast users: /mfa/totp/confirm: answer has no session");
    return { session: await this.newSession(r.session), recoveryCodes: r.recovery_codes };
  }

  /** Mails a password-reset code if the account exists (the answer does not say). */
  async resetPassword(email: string): Promise<void> {
    await this.request("POST", "/password/reset", { email });
  }

  /**
   * Sets a new password with the mailed code and signs in (or an MFA
   * challenge: a reset does not bypass the second factor); every other
   * session is revoked.
   */
  async confirmPasswordReset(email: string, code: string, password: string): Promise<SignInResult> {
    return this.signInAt("/password/reset/confirm", { email, code, password });
  }

  /** Signs in a new anonymous user (if the app's policy allows; signup_disabled otherwise). */
  async anonymous(): Promise<UserSession> {
    return this.sessionOnly("/anonymous", {});
  }

  /**
   * Brings back a session from a refresh token (default: the one in
   * `storage`). It refreshes at once, so that token is retired. null when
   * there is none; a refused token is removed from storage and throws.
   */
  async restore(refreshToken?: string): Promise<UserSession | null> {
    const storage = this.opts.storage;
    const rt = refreshToken ?? (storage ? await storage.get(this.opts.storageKey) : null);
    if (!rt) return null;
    try {
      const t = (await this.request("POST", "/refresh", { refresh_token: rt })) as SessionTokens;
      return await this.newSession(t);
    } catch (err) {
      if (storage && err instanceof UsersError && (err.code === "invalid_credentials" || err.code === "refresh_reused")) {
        await storage.remove(this.opts.storageKey);
      }
      throw err;
    }
  }

  /**
   * Where to send the browser to sign in with an OAuth/OIDC provider. The
   * auth service redirects back to redirectUri (one of the policy's
   * redirect_uris) with ?login_code=… (for exchange) or ?error=….
   */
  oauthStartUrl(provider: string, redirectUri: string): string {
    return `${this.base}/oauth/${encodeURIComponent(provider)}/start?${new URLSearchParams({ redirect_uri: redirectUri })}`;
  }

  /** Redeems the login_code of the OAuth callback (one use, 60 s). */
  async exchange(loginCode: string): Promise<SignInResult> {
    return this.signInAt("/oauth/exchange", { login_code: loginCode });
  }

  private async signInAt(path: string, body: unknown): Promise<SignInResult> {
    const r = (await this.request("POST", path, body)) as (SessionTokens & { mfa_required?: false }) | { mfa_required: true; mfa_token: string; methods: string[] };
    if (r && r.mfa_required) return { mfa: { mfa_token: r.mfa_token, methods: r.methods ?? [] } };
    if (!r || !(r as SessionTokens).access_token || !(r as SessionTokens).refresh_token) {
      throw new RoomcastError(`roomcast users: ${path}: answer has neither a session nor an MFA challenge`);
    }
    return { session: await this.newSession(r as SessionTokens) };
  }

  private async sessionOnly(path: string, body: unknown): Promise<UserSession> {
    const r = await this.signInAt(path, body);
    if (!r.session) throw new RoomcastError(`roomcast users: ${path}: unexpected MFA challenge`);
    return r.session;
  }

  private async newSession(t: SessionTokens): Promise<UserSession> {
    const s = new UserSession(this, t);
    await this.save(t.refresh_token);
    return s;
  }

  /** @internal */
  async save(refreshToken: string | null): Promise<void> {
    const storage = this.opts.storage;
    if (!storage) return;
    if (refreshToken) await storage.set(this.opts.storageKey, refreshToken);
    else await storage.remove(this.opts.storageKey);
  }

  /**
   * @internal One request to the app's auth base + path; the parsed JSON
   * answer (undefined for an empty one). Failures answered are UsersError.
   */
  async request(method: string, path: string, body?: unknown, bearer?: string, signal?: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
    const init: RequestInit = { method, headers, credentials: "omit" };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (signal) init.signal = signal;
    const resp = await this.fetchFn(this.base + path, init);
    const text = await resp.text();
    let json: unknown;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        if (resp.ok) throw new RoomcastError(`roomcast users: ${method} ${path}: answer is not JSON`);
      }
    }
    if (!resp.ok) {
      const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const ra = Number(resp.headers.get("Retry-After"));
      throw new UsersError(resp.status, e?.code || "unknown", e?.message || resp.statusText, ra > 0 ? ra * 1000 : 0);
    }
    return json;
  }
}

/** Reads a JWT's iat and exp (ms) without verifying it. */
function jwtTimes(token: string): { iat: number; exp: number } | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    let b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    const c = JSON.parse(atob(b64)) as { iat?: unknown; exp?: unknown };
    if (typeof c.iat === "number" && typeof c.exp === "number" && c.exp > c.iat) return { iat: c.iat * 1000, exp: c.exp * 1000 };
  } catch {
    // not a JWT we can read: fall back to access_expires_at
  }
  return null;
}

/**
 * A signed-in user: a short-lived access token (accepted by the gateways)
 * and a rotating refresh token. getAccessToken (and getToken, for the
 * realtime client) refresh the access token before it expires; concurrent
 * callers share one refresh. When the server refuses the refresh token the
 * session ends: every call then throws SessionEndedError and "ended" is
 * emitted.
 */
export class UserSession extends Emitter<UserSessionEvents> {
  private t: SessionTokens;
  private life = 0; // the access token's lifetime, ms
  private localExp = 0; // its expiry by the local clock, ms
  private inflight: Promise<void> | null = null;
  private endedErr: SessionEndedError | null = null;

  /** @internal */
  constructor(
    private readonly users: UsersClient,
    tokens: SessionTokens,
  ) {
    super();
    this.t = tokens;
    this.install(tokens);
  }

  private install(t: SessionTokens): void {
    this.t = t;
    // The lifetime from the token's own iat and exp (both the server's
    // clock), counted from now on the local clock: a skewed local clock
    // neither refreshes constantly nor too late.
    const now = Date.now();
    const times = jwtTimes(t.access_token);
    this.life = times ? times.exp - times.iat : Date.parse(t.access_expires_at) - now;
    this.localExp = now + this.life;
  }

  /**
   * How long before expiry the token is refreshed: a fifth of its life, at
   * least 5 s, at most half. The realtime client asks a tenth of the life
   * early (≥ 2 s), so it always finds the token due and gets a fresh one.
   */
  private margin(): number {
    return Math.min(Math.max(this.life / 5, 5000), this.life / 2);
  }

  /** The session's id (stable across refreshes). */
  get id(): string {
    return this.t.session_id;
  }

  /** The user as of the last sign-in or refresh (`me()` asks the server). */
  get user(): User {
    return this.t.user;
  }

  /** The current tokens (refresh_token "" once ended). */
  get tokens(): Readonly<SessionTokens> {
    return this.t;
  }

  /** Why the session ended, or null. */
  get error(): SessionEndedError | null {
    return this.endedErr;
  }

  /**
   * An access token that is not about to expire, refreshed first when due.
   * If a due refresh fails for a passing reason (network, 5xx,
   * rate_limited), the current token is returned while it is still valid.
   */
  async getAccessToken(): Promise<string> {
    if (this.endedErr) throw this.endedErr;
    const tok = this.t.access_token;
    const exp = this.localExp;
    if (exp - Date.now() >= this.margin()) return tok;
    try {
      await this.refreshIf(tok);
      return this.t.access_token;
    } catch (err) {
      if (!(err instanceof SessionEndedError) && exp - Date.now() > 1000) return tok;
      throw err;
    }
  }

  /**
   * For the realtime client: `new RoomcastClient({ url, getToken: session.getToken })`.
   * The user connects as itself (client id = user id).
   */
  readonly getToken = (): Promise<string> => this.getAccessToken();

  /** Gets a new access and refresh token now (or waits for the refresh in progress). */
  refresh(): Promise<void> {
    return this.refreshIf(null);
  }

  /**
   * Refreshes, single-flight. seen: the access token the caller found stale;
   * when it was replaced meanwhile there is nothing to do.
   */
  private refreshIf(seen: string | null): Promise<void> {
    if (this.endedErr) return Promise.reject(this.endedErr);
    if (seen !== null && seen !== this.t.access_token) return Promise.resolve();
    if (!this.inflight) {
      this.inflight = this.runRefresh().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  private async runRefresh(): Promise<void> {
    const signal = AbortSignal.timeout(this.users.opts.refreshTimeout);
    let t: SessionTokens;
    try {
      t = (await this.users.request("POST", "/refresh", { refresh_token: this.t.refresh_token }, undefined, signal)) as SessionTokens;
    } catch (err) {
      if (err instanceof UsersError && (err.code === "refresh_reused" || err.code === "invalid_credentials")) {
        throw await this.end(new SessionEndedError(`roomcast users: session ended: the server refused its refresh token (${err.code})`, err));
      }
      throw err;
    }
    this.install(t);
    await this.users.save(t.refresh_token);
    this.emit("refreshed", t);
  }

  /** Ends the session here (once); returns why it ended. */
  private async end(err: SessionEndedError): Promise<SessionEndedError> {
    if (this.endedErr) return this.endedErr;
    this.endedErr = err;
    this.t = { ...this.t, access_token: "", refresh_token: "" };
    await this.users.save(null);
    this.emit("ended", err);
    return err;
  }

  /**
   * Revokes the session on the server (its refresh token stops working) and
   * ends it here, whatever the server answered; throws if the server did
   * not confirm.
   */
  async signOut(): Promise<void> {
    if (this.endedErr) return;
    // A refresh in flight is about to replace the refresh token.
    while (this.inflight) await this.inflight.catch(() => undefined);
    if (this.endedErr) return;
    const rt = this.t.refresh_token;
    await this.end(new SessionEndedError("roomcast users: session ended: signed out"));
    await this.users.request("POST", "/signout", { refresh_token: rt });
  }

  /**
   * A call with the access token. A 401 answer (revoked, or clocks
   * disagree) refreshes once and tries again: a revoked session then ends.
   */
  private async authed(method: string, path: string, body?: unknown): Promise<unknown> {
    const tok = await this.getAccessToken();
    try {
      return await this.users.request(method, path, body, tok);
    } catch (err) {
      if (!(err instanceof UsersError) || err.status !== 401) throw err;
      await this.refreshIf(tok);
      return await this.users.request(method, path, body, this.t.access_token);
    }
  }

  /** The user as the server knows it now. */
  async me(): Promise<User> {
    return (await this.authed("GET", "/me")) as User;
  }

  /** The user's sessions (`current` marks this one). */
  async sessions(): Promise<SessionInfo[]> {
    return ((await this.authed("GET", "/sessions")) as { sessions: SessionInfo[] }).sessions;
  }

  /** Signs out one of the user's sessions; this one's own id ends it here too. */
  async revokeSession(id: string): Promise<void> {
    await this.authed("DELETE", `/sessions/${encodeURIComponent(id)}`);
    if (id === this.t.session_id) await this.end(new SessionEndedError("roomcast users: session ended: revoked"));
  }

  /** Gives an anonymous user an email and password; `users.verify` with the mailed code completes it (same user id). */
  async upgrade(email: string, password: string): Promise<void> {
    await this.authed("POST", "/upgrade", { email, password });
  }

  /** Starts TOTP enrollment: show the QR code, then confirmTotp. */
  async enrollTotp(): Promise<TOTPEnrollment> {
    return (await this.authed("POST", "/mfa/totp/enroll", {})) as TOTPEnrollment;
  }

  /** Turns TOTP on with a current code; returns the ten recovery codes, shown once. */
  async confirmTotp(code: string): Promise<string[]> {
    return ((await this.authed("POST", "/mfa/totp/confirm", { code })) as { recovery_codes: string[] }).recovery_codes;
  }

  /** Turns TOTP off; takes a current code. */
  async disableTotp(code: string): Promise<void> {
    await this.authed("POST", "/mfa/totp/disable", { code });
  }
}
