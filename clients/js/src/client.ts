import { backoffDelay } from "./backoff.js";
import { closePolicy, type RetryPolicy } from "./closecodes.js";
import { classify } from "./dedupe.js";
import { Emitter, reportListenerError } from "./emitter.js";
import { ClosedError, CloseError, DisconnectedError, ReplyError, RoomcastError, TimeoutError, TokenError } from "./errors.js";
import { isHTTPToken, refreshDelay, tokenExpiry } from "./jwt.js";
import { codecFor, loadCodec, type Codec, type CodecName } from "./codec.js";
import {
  TOKEN_SUBPROTOCOL_PREFIX,
  type Command,
  type ConnectedFrame,
  type MessageFrame,
  type Position,
  type PresenceAction,
  type PresenceCount,
  type PresenceFrame,
  type PresenceMember,
  type ReplyFrame,
  type ServerFrame,
  type HistoryMessage,
} from "./protocol.js";

/** The part of the WebSocket API the client uses (the browser's, or Node's). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  /** Set to "arraybuffer" for the msgpack codec (browsers default to Blob). */
  binaryType?: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ClientOptions {
  /**
   * The gateway's WebSocket endpoint, e.g. "wss://rt.example.com/v1/connect".
   * Several URLs are tried in turn on reconnects (each attempt takes the next).
   */
  url: string | string[];
  /** A JWT minted by your backend. Set token or getToken, not both. */
  token?: string;
  /**
   * Returns a fresh token; called on every connect and reconnect (including
   * after close 4002 token_expired) and shortly before the current token
   * expires. With a static token, 4002 ends the client. An error with
   * `terminal: true` (UserSession's SessionEndedError) ends it too.
   */
  getToken?: () => string | Promise<string>;
  /** Send the token as ?token= instead of the Sec-WebSocket-Protocol value (default false). */
  tokenInQuery?: boolean;
  /** Reconnect by itself (default true). */
  reconnect?: boolean;
  /** Backoff: attempt n waits a random time in [0, min(max, base·2^(n-1))] ms. Defaults 200 and 10000. */
  reconnectBaseDelay?: number;
  reconnectMaxDelay?: number;
  /** Give up after that many failed attempts in a row (default 0: never; terminal close codes always end it). */
  maxReconnectAttempts?: number;
  /** Bound on one connection attempt: handshake, resume and re-joins (default 10000 ms). */
  connectTimeout?: number;
  /** Bound on a command, including waiting for a connection and retries (default 30000 ms). */
  requestTimeout?: number;
  /** Replace the token before it expires when getToken is set (default true). */
  refreshToken?: boolean;
  /**
   * React to navigator.onLine and page visibility: reconnect at once when the
   * browser comes back online or the page becomes visible (default true where
   * `window` exists).
   */
  watchNetwork?: boolean;
  /** WebSocket implementation (default globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /**
   * Wire encoding: "json" (default; text frames) or "msgpack" (binary
   * frames, subprotocol roomcast.v1.msgpack), where binary payloads travel
   * as raw bytes instead of base64. Payloads reach handlers the same way
   * with either: a Uint8Array for bytes, the value for JSON. Clients of
   * either codec share rooms.
   */
  codec?: CodecName;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "resumed" | "closed";

/** One room's (or presence subscription's) outcome after a reconnect. */
export interface RoomRecovery {
  room: string;
  /** This is the room's presence subscription, not its messages. */
  presence: boolean;
  /** Every message after the last one delivered follows, in order. False: resync the room. */
  recovered: boolean;
  position?: Position;
  epochChanged?: boolean;
  /** The room could not be re-joined; the client no longer follows it. */
  error?: Error;
}

export interface StateChange {
  state: ConnectionState;
  /** Why the connection ended (reconnecting, closed). */
  error?: Error;
  /** Next attempt number and its delay (reconnecting). */
  attempt?: number;
  delay?: number;
  /** Reconnect outcome (resumed): true when no message was lost. */
  recovered?: boolean;
  rooms?: RoomRecovery[];
  /** The server's connected frame (connected, resumed). */
  info?: ConnectedFrame;
}

export interface EpochChange {
  room: string;
  presence: boolean;
  old: Position;
  new: Position;
}

/** A received room message. */
export type Message<D = unknown> = Omit<MessageFrame<D>, "type">;
/** A received presence change. */
export type PresenceEvent<D = unknown> = Omit<PresenceFrame<D>, "type">;

export interface ClientEvents {
  /** Connection state changes. */
  state: (change: StateChange) => void;
  /** Every message of every followed room, after the room's own handlers. */
  message: (msg: Message) => void;
  /** Every presence event of every subscribed room. */
  presence: (ev: PresenceEvent) => void;
  /** Every live metrics push of every watched room (Room.metrics.watch). */
  metrics: (m: RoomMetrics) => void;
  /** A followed room's epoch changed: messages between old and new may be lost; resync. */
  epochChange: (change: EpochChange) => void;
  /** A server error frame, or a frame the client could not decode. */
  error: (err: Error) => void;
  /** The token was replaced before it expired. */
  tokenRefreshed: (info: { inBand: boolean; expiresAt: number }) => void;
}

export interface PublishOptions {
  /** Skip offsets, recovery and history: best effort, lowest latency. Not retried. */
  transient?: boolean;
  /** Dedupe key (≤ 128 bytes); a random one is used for every non-transient publish unless set. */
  idempotencyKey?: string;
  /** Overrides requestTimeout for this call. */
  timeout?: number;
}

/** A history query (docs/protocol.md "History"); bounds are inclusive. */
export interface HistoryQuery {
  /** "forward" (default: oldest first) or "backward" (newest first). */
  direction?: "forward" | "backward";
  /** Only this epoch. */
  epoch?: string;
  fromOffset?: number;
  toOffset?: number;
  /** Publishing gateway's timestamps, Unix ms. */
  start?: number;
  end?: number;
  /** Page size, 1–1000 (server default 100). */
  limit?: number;
  /** From the previous page, with the same query. */
  cursor?: string;
}

export interface HistoryPage<D = unknown> {
  messages: HistoryMessage<D>[];
  /** Absent on the last page. */
  cursor?: string;
}

export interface PresencePage<D = unknown> {
  members: PresenceMember<D>[];
  /** Absent on the last page. */
  cursor?: string;
}

interface Pending {
  cmd: Command;
  resolve: (r: ReplyFrame) => void;
  reject: (e: Error) => void;
  hook?: ((r: ReplyFrame) => void) | undefined;
  timer?: ReturnType<typeof setTimeout>;
}

/** A followed stream: a room's messages, or a room's presence events. */
interface Follow {
  room: string;
  presence: boolean;
  /** Last delivered (or join) position; null before the first reply. */
  pos: Position | null;
}

const followKey = (room: string, presence: boolean) => (presence ? "p:" : "m:") + room;

const OPEN = 1;

/** One WebSocket connection. */
class Wire {
  info?: ConnectedFrame;
  pending = new Map<number, Pending>();
  nextId = 1;
  closed = false;
  closeError?: Error;
  tokenExp = 0;
  connectedAt = 0;
  refreshTimer?: ReturnType<typeof setTimeout>;
  onClosed?: (err: Error) => void;

  constructor(
    readonly ws: WebSocketLike,
    readonly codec: Codec,
  ) {}

  request(cmd: Command, hook?: (r: ReplyFrame) => void, timeout = 30000): Promise<ReplyFrame> {
    if (this.closed || this.ws.readyState !== OPEN) {
      return Promise.reject(new DisconnectedError(false, this.closeError));
    }
    const id = this.nextId++;
    const c = { ...cmd, id };
    return new Promise<ReplyFrame>((resolve, reject) => {
      const p: Pending = { cmd: c, resolve, reject, hook };
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`roomcast: ${cmd.op}: no reply within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, p);
      try {
        this.ws.send(this.codec.encode(c));
      } catch (err) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        reject(new DisconnectedError(false, err));
      }
    });
  }

  /** Runs on a reply frame: the hook first (before any later frame), then the caller. */
  reply(r: ReplyFrame): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    clearTimeout(p.timer);
    if (r.error) {
      p.reject(new ReplyError(r.error.code, r.error.message, p.cmd.op));
      return;
    }
    if (p.hook) {
      try {
        p.hook(r);
      } catch (err) {
        reportListenerError(err);
      }
    }
    p.resolve(r);
  }

  /** Marks the wire closed and fails what is in flight. */
  ended(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    clearTimeout(this.refreshTimer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new DisconnectedError(true, err));
    }
    this.pending.clear();
    this.onClosed?.(err);
  }

  close(code: number, reason = ""): void {
    try {
      this.ws.close(code, reason);
    } catch {
      /* already closing */
    }
    this.ended(new ClosedError());
  }
}

/**
 * RoomcastClient is a connection to Roomcast that survives reconnects: it
 * reconnects with backoff and full jitter (at once when a node drains), gets
 * a fresh token from getToken() for every attempt and before expiry, resumes
 * its session on whichever node it reaches and re-joins every room asking for
 * the messages after the last one delivered, so handlers see each room's
 * messages once, in order — or the "resumed" state change says, per room,
 * that recovery was not possible. Terminal close codes (invalid token,
 * revoked key, …) end it; the "closed" state change carries why.
 */
export class RoomcastClient extends Emitter<ClientEvents> {
  private readonly opts: Required<Omit<ClientOptions, "token" | "getToken" | "url" | "WebSocket" | "codec">> & Pick<ClientOptions, "token" | "getToken">;
  private readonly codec: Codec;
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly WS: WebSocketConstructor;

  private cur: Wire | null = null;
  private ready = false;
  private _state: ConnectionState = "idle";
  private closedError: Error | null = null;
  private connecting: Promise<void> | null = null;
  private waiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>();

  private sessionId = "";
  private resumeToken = "";
  private follows = new Map<string, Follow>();
  private entered = new Map<string, unknown>();
  /** Watched rooms' live metrics intervals: watched again after a reconnect. */
  private watched = new Map<string, number | undefined>();
  private rooms = new Map<string, Room<any>>();

  private wake: (() => void) | null = null;
  private unwatch: (() => void) | null = null;

  constructor(options: ClientOptions) {
    super();
    const urls = Array.isArray(options.url) ? options.url : [options.url];
    if (urls.length === 0 || urls.some((u) => !/^wss?:\/\//.test(u))) {
      throw new TypeError("roomcast: url must be one or more ws:// or wss:// URLs");
    }
    if (!!options.token === !!options.getToken) {
      throw new TypeError("roomcast: set token or getToken, not both (and not neither)");
    }
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("roomcast: no WebSocket implementation; pass options.WebSocket");
    this.WS = WS;
    this.codec = codecFor(options.codec);
    this.urls = urls;
    this.opts = {
      token: options.token,
      getToken: options.getToken,
      tokenInQuery: options.tokenInQuery ?? false,
      reconnect: options.reconnect ?? true,
      reconnectBaseDelay: options.reconnectBaseDelay ?? 200,
      reconnectMaxDelay: options.reconnectMaxDelay ?? 10000,
      maxReconnectAttempts: options.maxReconnectAttempts ?? 0,
      connectTimeout: options.connectTimeout ?? 10000,
      requestTimeout: options.requestTimeout ?? 30000,
      refreshToken: options.refreshToken ?? true,
      watchNetwork: options.watchNetwork ?? typeof window !== "undefined",
    };
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  private isClosed(): boolean {
    return this._state === "closed";
  }

  /** Whether a connection is up and restored (commands go out at once). */
  get connected(): boolean {
    return this.ready;
  }

  /** What the server announced for the current connection (node, connection id, limits), if any. */
  get info(): ConnectedFrame | undefined {
    return this.cur?.info;
  }

  /** Why the client ended, once it has ("closed" state). */
  get error(): Error | null {
    return this.closedError;
  }

  /**
   * Connects. Resolves once the server accepted the first connection. The
   * first connection is not retried: an error here is about the URL, the
   * token or the network (a CloseError for a refused token), so a
   * misconfigured client fails fast. After that the client reconnects by
   * itself until close(), a terminal close code or maxReconnectAttempts.
   */
  connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    if (this.isClosed()) return Promise.reject(new ClosedError(this.closedError));
    this.connecting = (async () => {
      this.setState({ state: "connecting" });
      let w: Wire;
      try {
        w = await this.dial();
      } catch (err) {
        this.finish(err as Error);
        throw err;
      }
      if (this.isClosed()) {
        w.close(1000);
        throw new ClosedError(this.closedError);
      }
      this.sessionId = w.info!.session_id;
      this.resumeToken = w.info!.resume_token;
      this.install(w);
      this.watchNetwork();
      this.setState({ state: "connected", info: w.info });
      // Rooms joined before connect() resolved were queued; they go out now.
    })();
    return this.connecting;
  }

  /**
   * Ends the client: the connection closes with 1000 (which ends the session
   * on the server), reconnecting stops and pending commands fail with
   * ClosedError.
   */
  close(): void {
    if (this.isClosed()) return;
    const w = this.cur;
    this.finish(new ClosedError());
    w?.close(1000);
  }

  /** The room object for name (one per name): join, publish, handlers, presence. */
  room<E extends EventMap = EventMap, P = unknown>(name: string): Room<E, P> {
    let r = this.rooms.get(name);
    if (!r) this.rooms.set(name, (r = new Room(this, name)));
    return r as Room<E, P>;
  }

  // ---- connection ----------------------------------------------------------

  private nextURL(): string {
    const u = this.urls[this.urlIndex % this.urls.length]!;
    this.urlIndex++;
    return u;
  }

  private async token(): Promise<string> {
    let tok = this.opts.token;
    if (this.opts.getToken) {
      try {
        tok = await this.opts.getToken();
      } catch (err) {
        throw new TokenError(`roomcast: getToken failed: ${(err as Error)?.message ?? err}`, err);
      }
    }
    if (!tok) throw new TokenError("roomcast: token is empty");
    if (!this.opts.tokenInQuery && !isHTTPToken(tok)) {
      throw new TokenError("roomcast: token has characters not allowed in Sec-WebSocket-Protocol; set tokenInQuery");
    }
    return tok;
  }

  /** Opens one connection and waits for its connected frame. */
  private async dial(): Promise<Wire> {
    const tok = await this.token();
    await loadCodec(this.codec.name); // msgpack: its library loads on first use
    let url = this.nextURL();
    const protocols = [this.codec.subprotocol];
    if (this.opts.tokenInQuery) {
      url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(tok);
    } else {
      protocols.push(TOKEN_SUBPROTOCOL_PREFIX + tok);
    }
    const ws = new this.WS(url, protocols);
    if (this.codec.binary) ws.binaryType = "arraybuffer";
    const w = new Wire(ws, this.codec);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        fail(new TimeoutError(`roomcast: no connection within ${this.opts.connectTimeout} ms`));
        try {
          ws.close(1000);
        } catch {
          /* ignore */
        }
      }, this.opts.connectTimeout);
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(e);
      };
      ws.onerror = () => {
        /* the close event that follows says why */
      };
      ws.onclose = (ev) => {
        const err = new CloseError(ev.code, ev.reason);
        w.ended(err);
        fail(err);
      };
      ws.onmessage = (ev) => {
        let f: ServerFrame | null;
        try {
          // A frame of the other kind (binary on JSON, text on msgpack) is
          // a FrameError too.
          f = this.codec.decode(ev.data);
        } catch (err) {
          return this.emit("error", err as Error);
        }
        if (!f) return;
        if (!w.info) {
          if (f.type !== "connected") return;
          w.info = f;
          w.connectedAt = Date.now();
          w.tokenExp = this.opts.getToken ? tokenExpiry(tok) : 0;
          settled = true;
          clearTimeout(timer);
          resolve();
          return;
        }
        this.frame(w, f);
      };
    });
    return w;
  }

  /** Makes w the current connection. */
  private install(w: Wire): void {
    this.cur = w;
    this.ready = true;
    w.onClosed = (err) => this.lost(w, err);
    if (w.closed) {
      this.lost(w, w.closeError!);
      return;
    }
    this.scheduleRefresh(w);
    for (const waiter of [...this.waiters]) waiter.resolve();
    this.waiters.clear();
  }

  private frame(w: Wire, f: ServerFrame): void {
    switch (f.type) {
      case "reply":
        w.reply(f);
        return;
      case "message":
      case "presence":
        this.accept(f);
        return;
      case "metrics": {
        if (!this.watched.has(f.room)) return;
        const m = f.metrics;
        const metrics: RoomMetrics = { room: f.room, members: m.members, clients: m.clients, connections: m.connections, messageRate: m.message_rate, ts: f.ts };
        this.rooms.get(f.room)?.metrics.dispatch(metrics);
        this.emit("metrics", metrics);
        return;
      }
      case "error":
        this.emit("error", new ReplyError(f.error.code, f.error.message, "frame"));
        return;
    }
  }

  /** Delivers a message or presence event of a followed room once, in order. */
  private accept(f: MessageFrame | PresenceFrame): void {
    const presence = f.type === "presence";
    const follow = this.follows.get(followKey(f.room, presence));
    if (!follow) return; // left, or never joined
    const transient = f.type === "message" && f.transient;
    if (!transient) {
      const pos = { offset: f.offset!, epoch: f.epoch! };
      const v = classify(follow.pos, pos);
      if (v.kind === "duplicate") return;
      follow.pos = pos;
      if (v.kind === "epoch_change") this.emit("epochChange", { room: f.room, presence, old: v.old, new: pos });
    }
    const { type: _t, ...ev } = f;
    if (presence) {
      this.rooms.get(f.room)?.presence.dispatch(ev as PresenceEvent);
      this.emit("presence", ev as PresenceEvent);
    } else {
      this.rooms.get(f.room)?.dispatch(ev as Message);
      this.emit("message", ev as Message);
    }
  }

  /** A connection ended. */
  private lost(w: Wire, err: Error): void {
    if (w !== this.cur) return; // replaced (token refresh) or not installed yet
    this.cur = null;
    this.ready = false;
    if (this.isClosed()) return;
    void this.reconnect(err);
  }

  private policyFor(err: unknown): RetryPolicy {
    if (err instanceof CloseError) return closePolicy(err.code, !!this.opts.getToken);
    if (err instanceof ClosedError) return "never";
    // A token source that can never give a token again (a signed-out or
    // revoked UserSession: SessionEndedError) ends the client.
    if (err instanceof TokenError && (err.cause as { terminal?: unknown } | undefined)?.terminal === true) return "never";
    return "backoff";
  }

  private async reconnect(cause: Error): Promise<void> {
    let policy = this.policyFor(cause);
    for (let attempt = 1; ; attempt++) {
      if (this.isClosed()) return;
      if (policy === "never" || !this.opts.reconnect) return this.finish(cause);
      const max = this.opts.maxReconnectAttempts;
      if (max > 0 && attempt > max) {
        return this.finish(new RoomcastError(`roomcast: gave up after ${max} reconnect attempts: ${cause.message}`, { cause }));
      }
      const delay = backoffDelay(policy, attempt, { baseDelay: this.opts.reconnectBaseDelay, maxDelay: this.opts.reconnectMaxDelay });
      this.setState({ state: "reconnecting", error: cause, attempt, delay });
      const woken = await this.sleep(delay);
      if (this.isClosed()) return;
      if (woken) attempt = 0; // back online / visible: start the backoff over (the ++ makes it 1)
      this.setState({ state: "connecting" });
      try {
        const { w, change } = await this.attempt();
        if (this.isClosed()) {
          w.close(1000);
          return;
        }
        this.install(w);
        if (this.cur === w) this.setState(change);
        return;
      } catch (err) {
        if (this.isClosed()) return;
        cause = err as Error;
        policy = this.policyFor(err);
        // A node that drains twice in a row, or a new token refused again: slow down.
        if (policy === "now" || policy === "refresh_token") policy = "backoff";
      }
    }
  }

  /**
   * Waits ms, or less when the browser comes back online or the page becomes
   * visible (true then). While offline it waits for the network, at most
   * reconnectMaxDelay.
   */
  private sleep(ms: number): Promise<boolean> {
    const nav = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
    if (this.opts.watchNetwork && nav && nav.onLine === false) ms = Math.max(ms, this.opts.reconnectMaxDelay);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve(false);
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve(true);
      };
    });
  }

  /** Connects and restores the session and every followed room on the new connection. */
  private async attempt(): Promise<{ w: Wire; change: StateChange }> {
    const w = await this.dial();
    const timeout = this.opts.connectTimeout;
    try {
      const change = await this.restore(w, timeout);
      return { w, change };
    } catch (err) {
      w.close(3000, "restore failed");
      throw err;
    }
  }

  private async restore(w: Wire, timeout: number): Promise<StateChange> {
    const change: StateChange = { state: "resumed", recovered: true, rooms: [], info: w.info };
    let resumed = false;
    if (this.sessionId && this.resumeToken) {
      try {
        const r = await w.request({ op: "resume", session_id: this.sessionId, resume_token: this.resumeToken }, undefined, timeout);
        this.sessionId = r.session_id ?? this.sessionId;
        this.resumeToken = r.resume_token ?? "";
        resumed = true;
      } catch (err) {
        if (!(err instanceof ReplyError)) throw err;
      }
    }
    if (!resumed) {
      change.recovered = false;
      this.sessionId = w.info!.session_id;
      this.resumeToken = w.info!.resume_token;
    }
    const follows = [...this.follows.entries()];
    const results = await Promise.allSettled(
      follows.map(([key, f]) => {
        const since = f.pos && f.pos.epoch ? { ...f.pos } : undefined;
        const op = f.presence ? "presence.subscribe" : "join";
        return w.request({ op, room: f.room, since }, this.joinHook(key, since), timeout).then((r) => ({ r, since }));
      }),
    );
    results.forEach((res, i) => {
      const [key, f] = follows[i]!;
      if (res.status === "rejected") {
        const err = res.reason as Error;
        if (!(err instanceof ReplyError)) throw err;
        // The room refuses us now (e.g. capability gone): report it and stop following it.
        if (this.follows.get(key) === f) this.follows.delete(key);
        change.recovered = false;
        change.rooms!.push({ room: f.room, presence: f.presence, recovered: false, error: err });
        return;
      }
      const { r, since } = res.value;
      const rr: RoomRecovery = {
        room: f.room,
        presence: f.presence,
        recovered: !!(r.recovered && since),
        position: r.position,
        epochChanged: !!(since && r.position && r.position.epoch !== since.epoch),
      };
      if (!rr.recovered) change.recovered = false;
      change.rooms!.push(rr);
    });
    await this.reenter(w, timeout);
    return change;
  }

  private async reenter(w: Wire, timeout: number): Promise<void> {
    await Promise.allSettled([
      ...[...this.entered.entries()].map(([room, data]) => w.request({ op: "presence.enter", room, data }, undefined, timeout)),
      // The server does not keep metrics subscriptions across connections.
      ...[...this.watched.entries()].map(([room, interval_ms]) => w.request({ op: "metrics.subscribe", room, interval_ms }, undefined, timeout)),
    ]);
  }

  /**
   * Records a join (or presence.subscribe) reply's position before the
   * room's next message is accepted. With since and recovered the position
   * stays at since: the replay follows.
   */
  private joinHook(key: string, since: Position | undefined): (r: ReplyFrame) => void {
    return (r) => {
      const f = this.follows.get(key);
      if (!f || !r.position) return;
      const old = f.pos;
      if (since && r.recovered) return;
      if (!since && old && old.epoch) return; // joined twice: its messages keep flowing
      if (old && old.epoch === r.position.epoch && old.offset > r.position.offset) return;
      f.pos = { ...r.position };
      if (old && old.epoch && old.epoch !== r.position.epoch) {
        this.emit("epochChange", { room: f.room, presence: f.presence, old, new: f.pos });
      }
    };
  }

  // ---- token refresh -------------------------------------------------------

  private scheduleRefresh(w: Wire): void {
    clearTimeout(w.refreshTimer);
    if (!this.opts.getToken || !this.opts.refreshToken) return;
    const delay = refreshDelay(w.connectedAt, w.tokenExp);
    if (delay === null) return;
    w.refreshTimer = setTimeout(() => void this.refresh(w), Math.min(delay, 2 ** 31 - 1));
  }

  /**
   * Gives w a fresh token: in band with the refresh op, or, when the server
   * does not take it, by replacing the connection (make before break: the
   * new one resumes the session; offsets drop what both deliver).
   */
  private async refresh(w: Wire): Promise<void> {
    if (w !== this.cur || w.closed || this.isClosed()) return;
    const retryLater = () => {
      if (w === this.cur && !w.closed) w.refreshTimer = setTimeout(() => void this.refresh(w), 1000);
    };
    let tok: string;
    try {
      tok = await this.token();
    } catch {
      return retryLater(); // at expiry the server closes with 4002 and the reconnect takes over
    }
    try {
      await w.request({ op: "refresh", token: tok }, undefined, this.opts.connectTimeout);
      w.connectedAt = Date.now();
      w.tokenExp = tokenExpiry(tok);
      this.scheduleRefresh(w);
      this.emit("tokenRefreshed", { inBand: true, expiresAt: w.tokenExp });
      return;
    } catch (err) {
      if (!(err instanceof ReplyError)) return; // the connection went: the reconnect gets a token
    }
    if (w !== this.cur) return;
    let next: Wire;
    try {
      ({ w: next } = await this.attempt());
    } catch {
      return retryLater();
    }
    if (w !== this.cur || this.isClosed()) {
      next.close(1000);
      return;
    }
    // Swap first, so the old connection's close is not taken for a loss.
    this.cur = null;
    this.install(next);
    w.close(3001, "replaced");
    await this.reconcile(next);
    this.emit("tokenRefreshed", { inBand: false, expiresAt: next.tokenExp });
  }

  /** Rooms followed or left on the old connection while the new one was being restored. */
  private async reconcile(w: Wire): Promise<void> {
    const timeout = this.opts.connectTimeout;
    for (const [key, f] of this.follows) {
      const since = f.pos && f.pos.epoch ? { ...f.pos } : undefined;
      const op = f.presence ? "presence.subscribe" : "join";
      // Joining again is not an error: the reply carries the position.
      w.request({ op, room: f.room, since }, this.joinHook(key, since), timeout).catch(() => {});
    }
    await this.reenter(w, timeout);
  }

  // ---- network and visibility ---------------------------------------------

  private watchNetwork(): void {
    if (!this.opts.watchNetwork || this.unwatch) return;
    const win = (globalThis as { window?: EventTarget }).window;
    const doc = (globalThis as { document?: EventTarget & { visibilityState?: string } }).document;
    if (!win) return;
    const poke = () => {
      if (this.isClosed()) return;
      if (this.wake) {
        this.wake();
        return;
      }
      // Timers sleep in background tabs: a token may be due for refresh.
      const w = this.cur;
      if (w && w.tokenExp && Date.now() >= w.connectedAt + (refreshDelay(w.connectedAt, w.tokenExp) ?? Infinity)) {
        void this.refresh(w);
      }
    };
    const onVisible = () => {
      if (doc?.visibilityState === "visible") poke();
    };
    win.addEventListener("online", poke);
    doc?.addEventListener("visibilitychange", onVisible);
    this.unwatch = () => {
      win.removeEventListener("online", poke);
      doc?.removeEventListener("visibilitychange", onVisible);
    };
  }

  // ---- commands ------------------------------------------------------------

  private setState(change: StateChange): void {
    this._state = change.state;
    this.emit("state", change);
  }

  private finish(err: Error): void {
    if (this.isClosed()) return;
    this.closedError = err;
    this.ready = false;
    const w = this.cur;
    this.cur = null;
    if (w) clearTimeout(w.refreshTimer);
    this.wake?.();
    this.unwatch?.();
    this.unwatch = null;
    const closed = err instanceof ClosedError ? err : new ClosedError(err);
    for (const waiter of this.waiters) waiter.reject(closed);
    this.waiters.clear();
    this.setState({ state: "closed", error: err });
  }

  /** The current restored connection, waiting for one until deadline. */
  private current(deadline: number): Promise<Wire> {
    if (this.isClosed()) return Promise.reject(new ClosedError(this.closedError));
    if (this.cur && this.ready && !this.cur.closed) return Promise.resolve(this.cur);
    return new Promise<Wire>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          // Loop: the new connection may already be gone.
          this.current(deadline).then(resolve, reject);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(e);
        },
      };
      const timer = setTimeout(() => waiter.reject(new TimeoutError("roomcast: not connected in time")), Math.max(0, deadline - Date.now()));
      this.waiters.add(waiter);
    });
  }

  /**
   * Sends cmd on the current connection, waiting for one while disconnected.
   * A command cut off before it was written is sent on the next connection;
   * one cut off in flight fails with DisconnectedError unless retry is set.
   */
  /** @internal */
  async do(
    cmd: Command,
    o: { retry?: boolean; timeout?: number; prepare?: () => void; hook?: (r: ReplyFrame) => void; retryCodes?: string[] } = {},
  ): Promise<ReplyFrame> {
    const deadline = Date.now() + (o.timeout ?? this.opts.requestTimeout);
    let backoff = 100;
    for (;;) {
      const w = await this.current(deadline);
      o.prepare?.();
      try {
        return await w.request(cmd, o.hook, Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (err instanceof DisconnectedError && (o.retry || !err.sent)) continue;
        if (err instanceof ReplyError && o.retryCodes?.includes(err.code) && Date.now() + backoff < deadline) {
          await new Promise((r) => setTimeout(r, Math.random() * backoff));
          backoff = Math.min(backoff * 2, 2000);
          continue;
        }
        throw err;
      }
    }
  }

  /** @internal */
  async follow(room: string, presence: boolean): Promise<Position | undefined> {
    const key = followKey(room, presence);
    let added: Follow | null = null;
    const prepare = () => {
      if (!this.follows.has(key)) this.follows.set(key, (added = { room, presence, pos: null }));
    };
    try {
      const r = await this.do({ op: presence ? "presence.subscribe" : "join", room }, { retry: true, prepare, hook: this.joinHook(key, undefined) });
      return r.position;
    } catch (err) {
      // Refused (or the client closed): the room was not joined. Otherwise (a
      // timeout) it stays followed and the next reconnect joins it; call
      // leave() to drop it.
      if (added && this.follows.get(key) === added && (err instanceof ReplyError || err instanceof ClosedError)) this.follows.delete(key);
      throw err;
    }
  }

  /** @internal */
  async unfollow(room: string, presence: boolean): Promise<void> {
    const key = followKey(room, presence);
    const was = this.follows.delete(key);
    if (!presence) this.entered.delete(room); // the server leaves the room's presence too
    try {
      await this.do({ op: presence ? "presence.unsubscribe" : "leave", room });
    } catch (err) {
      if (was && ((err instanceof ReplyError && err.code === "not_joined") || err instanceof DisconnectedError)) return;
      throw err;
    }
  }

  /** @internal */
  async publish(room: string, event: string | undefined, data: unknown, opts: PublishOptions = {}): Promise<Position | null> {
    const transient = !!opts.transient;
    const key = transient ? opts.idempotencyKey : (opts.idempotencyKey ?? randomKey());
    const r = await this.do(
      { op: "publish", room, event, data, transient, idempotency_key: key },
      // The same idempotency key makes a retry safe: the first publish's position comes back.
      { retry: !transient, timeout: opts.timeout, retryCodes: transient ? [] : ["publish_failed", "unavailable"] },
    );
    return r.position ?? null;
  }

  /** @internal */
  async presenceOp(op: "presence.enter" | "presence.update" | "presence.leave", room: string, data?: unknown): Promise<void> {
    if (op === "presence.leave") {
      const was = this.entered.delete(room);
      try {
        await this.do({ op, room });
      } catch (err) {
        if (was && ((err instanceof ReplyError && err.code === "not_present") || err instanceof DisconnectedError)) return;
        throw err;
      }
      return;
    }
    await this.do({ op, room, data: data === undefined ? null : data }, { retry: true });
    this.entered.set(room, data === undefined ? null : data);
  }

  /** @internal */
  async presenceGet(room: string, cursor?: string, limit?: number): Promise<PresencePage> {
    const r = await this.do({ op: "presence.get", room, cursor, limit }, { retry: true });
    return { members: r.members ?? [], ...(r.cursor ? { cursor: r.cursor } : {}) };
  }

  /** @internal */
  async watchMetrics(room: string, intervalMs?: number): Promise<void> {
    await this.do({ op: "metrics.subscribe", room, interval_ms: intervalMs }, { retry: true });
    this.watched.set(room, intervalMs);
  }

  /** @internal */
  async unwatchMetrics(room: string): Promise<void> {
    if (!this.watched.delete(room)) return;
    try {
      await this.do({ op: "metrics.unsubscribe", room }, { retry: false });
    } catch (err) {
      if (err instanceof DisconnectedError) return; // the subscription went with its connection
      throw err;
    }
  }

  /** @internal */
  async presenceCount(room: string): Promise<PresenceCount> {
    const r = await this.do({ op: "presence.count", room }, { retry: true });
    return r.count ?? { clients: 0, connections: 0 };
  }

  /** @internal */
  async history(room: string, q: HistoryQuery = {}): Promise<HistoryPage> {
    const r = await this.do(
      {
        op: "history",
        room,
        direction: q.direction,
        epoch: q.epoch,
        from_offset: q.fromOffset,
        to_offset: q.toOffset,
        start: q.start,
        end: q.end,
        limit: q.limit,
        cursor: q.cursor,
      },
      { retry: true },
    );
    return { messages: r.messages ?? [], ...(r.cursor ? { cursor: r.cursor } : {}) };
  }

  /** @internal — for tests: the last delivered position of a followed room. */
  position(room: string, presence = false): Position | null {
    return this.follows.get(followKey(room, presence))?.pos ?? null;
  }
}

/** Event name → data type of a room's messages, for typed handlers. */
export type EventMap = Record<string, unknown>;

type Handler<T> = (data: T, msg: Message<T>) => void;

/**
 * A room: join/leave, publish, per-event handlers and presence. Get one with
 * client.room(name). Register handlers before joining so none is missed.
 */
export class Room<E extends EventMap = EventMap, P = unknown> {
  private handlers = new Map<string, Set<Handler<any>>>();
  readonly presence: RoomPresence<P>;
  readonly metrics: RoomMetricsWatch;

  constructor(
    private readonly client: RoomcastClient,
    readonly name: string,
  ) {
    this.presence = new RoomPresence<P>(client, name);
    this.metrics = new RoomMetricsWatch(client, name);
  }

  /**
   * Joins the room; resolves with where its stream stood (every later message
   * follows). The room stays joined across reconnects until leave().
   */
  join(): Promise<Position | undefined> {
    return this.client.follow(this.name, false);
  }

  /** Leaves the room: its messages stop at once and reconnects do not re-join it. */
  leave(): Promise<void> {
    return this.client.unfollow(this.name, false);
  }

  /**
   * Publishes data (any JSON value, or a Uint8Array of bytes, which
   * subscribers receive as a Uint8Array byte for byte) with an event name;
   * resolves with the
   * stored message's position (null for transient). Non-transient publishes
   * carry an idempotency key and are retried across reconnects, so a
   * resolved promise means stored exactly once.
   */
  publish<K extends keyof E & string>(event: K, data: E[K], opts?: PublishOptions): Promise<Position | null> {
    return this.client.publish(this.name, event, data, opts);
  }

  /**
   * One page of the room's past messages (needs the history capability, not
   * membership). Pass the reply's cursor with the same query for the next
   * page; pages never overlap or skip.
   */
  history(query?: HistoryQuery): Promise<HistoryPage<E[keyof E]>> {
    return this.client.history(this.name, query) as Promise<HistoryPage<E[keyof E]>>;
  }

  /** Every message the query matches, page by page (mind the size of the room). */
  async *historyPages(query: Omit<HistoryQuery, "cursor"> = {}): AsyncGenerator<HistoryMessage<E[keyof E]>[]> {
    let cursor: string | undefined;
    do {
      const page = await this.history({ ...query, cursor });
      yield page.messages;
      cursor = page.cursor;
    } while (cursor);
  }

  /** Handler for one event name ("*": every message of the room). Returns an unsubscribe function. */
  on<K extends keyof E & string>(event: K, handler: Handler<E[K]>): () => void;
  on(event: "*", handler: Handler<E[keyof E]>): () => void;
  on(event: string, handler: Handler<any>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set!.delete(handler);
  }

  /** @internal */
  dispatch(m: Message): void {
    for (const key of [m.event ?? "", "*"]) {
      const set = this.handlers.get(key);
      if (!set) continue;
      for (const h of [...set]) {
        try {
          h(m.data, m);
        } catch (err) {
          reportListenerError(err);
        }
      }
    }
  }
}

/** A room's presence: enter/update/leave, paged reads, counts and subscriptions. */
export class RoomPresence<P = unknown> {
  private handlers = new Map<string, Set<(ev: PresenceEvent<P>) => void>>();

  constructor(
    private readonly client: RoomcastClient,
    readonly room: string,
  ) {}

  /** Enters the room's presence set (join the room first); entered again after every reconnect. */
  enter(data?: P): Promise<void> {
    return this.client.presenceOp("presence.enter", this.room, data);
  }

  /** Replaces this member's data. */
  update(data: P): Promise<void> {
    return this.client.presenceOp("presence.update", this.room, data);
  }

  leave(): Promise<void> {
    return this.client.presenceOp("presence.leave", this.room);
  }

  /** One page of members (stable order); pass the previous page's cursor for the next. */
  get(opts: { cursor?: string; limit?: number } = {}): Promise<PresencePage<P>> {
    return this.client.presenceGet(this.room, opts.cursor, opts.limit) as Promise<PresencePage<P>>;
  }

  /** Every member, page by page. */
  async members(pageSize?: number): Promise<PresenceMember<P>[]> {
    const all: PresenceMember<P>[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.get({ cursor, limit: pageSize });
      all.push(...page.members);
      cursor = page.cursor;
    } while (cursor);
    return all;
  }

  count(): Promise<PresenceCount> {
    return this.client.presenceCount(this.room);
  }

  /**
   * Subscribes to join/update/leave events: each reaches the handlers once,
   * in order, across reconnects, until unsubscribe().
   */
  subscribe(): Promise<Position | undefined> {
    return this.client.follow(this.room, true);
  }

  unsubscribe(): Promise<void> {
    return this.client.unfollow(this.room, true);
  }

  /** Handler for one action ("*": every event). Returns an unsubscribe function. */
  on(action: PresenceAction | "*", handler: (ev: PresenceEvent<P>) => void): () => void {
    let set = this.handlers.get(action);
    if (!set) this.handlers.set(action, (set = new Set()));
    set.add(handler);
    return () => set!.delete(handler);
  }

  /** @internal */
  dispatch(ev: PresenceEvent): void {
    for (const key of [ev.action, "*"]) {
      const set = this.handlers.get(key);
      if (!set) continue;
      for (const h of [...set]) {
        try {
          h(ev as PresenceEvent<P>);
        } catch (err) {
          reportListenerError(err);
        }
      }
    }
  }
}

/** One push of a room's live metrics. */
export interface RoomMetrics {
  room: string;
  /** Presence: connections present and distinct clients. */
  members: number;
  clients: number;
  /** Connections joined to the room on every gateway. */
  connections: number;
  /** Messages per second delivered in the room. */
  messageRate: number;
  ts: number;
}

/** A room's live metrics (needs the `metrics` capability on the room). */
export class RoomMetricsWatch {
  private handlers = new Set<(m: RoomMetrics) => void>();

  constructor(
    private readonly client: RoomcastClient,
    readonly room: string,
  ) {}

  /** Starts the pushes, every intervalMs (1000–60000; default 5000), across reconnects until unwatch(). */
  watch(intervalMs?: number): Promise<void> {
    return this.client.watchMetrics(this.room, intervalMs);
  }

  unwatch(): Promise<void> {
    return this.client.unwatchMetrics(this.room);
  }

  /** Handler for every push. Returns an unsubscribe function. */
  on(handler: (m: RoomMetrics) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** @internal */
  dispatch(m: RoomMetrics): void {
    for (const h of [...this.handlers]) {
      try {
        h(m);
      } catch (err) {
        reportListenerError(err);
      }
    }
  }
}

function randomKey(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
