/**
 * Wire types and the JSON codec of the Roomcast client protocol
 * (docs/protocol.md, subprotocol "roomcast.v1.json"). The msgpack codec of
 * the same model is in codec.ts.
 */

/** The JSON subprotocol (text frames), the default. */
export const SUBPROTOCOL_JSON = "roomcast.v1.json";
/** The MessagePack subprotocol (binary frames; payload bytes as bin). */
export const SUBPROTOCOL_MSGPACK = "roomcast.v1.msgpack";
/**
 * In the JSON encoding, `"encoding":"base64"` marks a `data` that is a
 * base64 string of binary payload bytes rather than a JSON value.
 */
export const ENCODING_BASE64 = "base64";
/** Prefix of the extra offered subprotocol that carries the token. */
export const TOKEN_SUBPROTOCOL_PREFIX = "roomcast.token.";

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Where a room's stream stands: the offset within the room's epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

export interface Limits {
  max_message_bytes: number;
  max_room_name_bytes: number;
  max_rooms: number;
  publish_rate: number;
  publish_burst: number;
}

/** The first frame of every accepted connection. */
export interface ConnectedFrame {
  type: "connected";
  connection_id: string;
  session_id: string;
  resume_token: string;
  client_id: string;
  node: string;
  heartbeat_ms: number;
  limits?: Limits;
}

export interface ProtocolErrorBody {
  code: string;
  message: string;
}

export interface PresenceMember<D = unknown> {
  client_id: string;
  connection_id: string;
  data?: D;
  since: number;
}

export interface PresenceCount {
  clients: number;
  connections: number;
}

export interface ReplyFrame {
  type: "reply";
  id: number;
  error?: ProtocolErrorBody;
  room?: string;
  position?: Position;
  recovered?: boolean;
  session_id?: string;
  resume_token?: string;
  rooms?: string[];
  members?: PresenceMember[];
  cursor?: string;
  count?: PresenceCount;
  messages?: HistoryMessage[];
  [field: string]: unknown;
}

/** A room message as received. */
export interface MessageFrame<D = unknown> {
  type: "message";
  room: string;
  /** Per-room offset; absent (0) for transient messages. */
  offset?: number;
  epoch?: string;
  event?: string;
  data: D;
  from: string;
  /** The publishing gateway's clock, Unix ms. */
  ts: number;
  transient?: boolean;
}

export type PresenceAction = "join" | "update" | "leave";

export interface PresenceFrame<D = unknown> {
  type: "presence";
  room: string;
  action: PresenceAction;
  member: PresenceMember<D>;
  offset: number;
  epoch: string;
  ts: number;
}

/** One push of a room's live metrics (metrics.subscribe), cluster-wide. */
export interface MetricsFrame {
  type: "metrics";
  room: string;
  /** The numbers, in their own object ("members" at the top level is a reply's member list). */
  metrics: {
    /** Presence: connections present and distinct clients. */
    members: number;
    clients: number;
    /** Connections joined to the room on every gateway. */
    connections: number;
    /** Messages per second delivered in the room (last gateway report). */
    message_rate: number;
  };
  ts: number;
}

export interface ErrorFrame {
  type: "error";
  error: ProtocolErrorBody;
}

export type ServerFrame = ConnectedFrame | ReplyFrame | MessageFrame | PresenceFrame | MetricsFrame | ErrorFrame;

export type Op =
  | "join"
  | "leave"
  | "publish"
  | "resume"
  | "refresh"
  | "history"
  | "presence.enter"
  | "presence.update"
  | "presence.leave"
  | "presence.get"
  | "presence.count"
  | "presence.subscribe"
  | "presence.unsubscribe"
  | "metrics.subscribe"
  | "metrics.unsubscribe";

export interface Command {
  id?: number;
  op: Op;
  room?: string;
  event?: string;
  data?: unknown;
  /** JSON encoding only: "base64" when data is a base64 string of bytes. */
  encoding?: "base64";
  transient?: boolean;
  idempotency_key?: string;
  since?: Position;
  session_id?: string;
  resume_token?: string;
  cursor?: string;
  limit?: number;
  token?: string;
  /** metrics.subscribe: push interval, 1000–60000 ms (default 5000). */
  interval_ms?: number;
  // history
  direction?: "forward" | "backward";
  epoch?: string;
  from_offset?: number;
  to_offset?: number;
  start?: number;
  end?: number;
}

/** One message of a history page. */
export interface HistoryMessage<D = unknown> {
  offset: number;
  epoch: string;
  event?: string;
  data: D;
  from: string;
  ts: number;
}

/** Largest request id a JavaScript number represents exactly. */
export const MAX_REQUEST_ID = Number.MAX_SAFE_INTEGER;

/**
 * Encodes a command as the text of one frame. Fields that are undefined are
 * left out; `data` is sent as given (any JSON value, null included).
 */
export function encodeCommand(cmd: Command): string {
  return JSON.stringify(commandFields(cmd));
}

/**
 * The fields of a command as they go on the wire, in either encoding: id
 * and op first, without undefined fields and transient:false. Throws
 * RangeError for an id the server cannot take.
 */
export function commandFields(cmd: Command): Record<string, unknown> {
  if (!cmd.id || cmd.id < 1 || cmd.id > MAX_REQUEST_ID || !Number.isInteger(cmd.id)) {
    throw new RangeError("roomcast: a command needs a positive integer id ≤ 2^53−1");
  }
  const out: Record<string, unknown> = { id: cmd.id, op: cmd.op };
  for (const [k, v] of Object.entries(cmd)) {
    if (k === "id" || k === "op" || v === undefined) continue;
    if (k === "transient" && v === false) continue;
    out[k] = v;
  }
  return out;
}

/** A frame the client cannot make sense of. */
export class FrameError extends Error {
  override name = "FrameError";
}

const FRAME_TYPES = new Set(["connected", "reply", "message", "presence", "metrics", "error"]);

/**
 * Decodes one text frame from the server. Unknown fields are kept (clients
 * must ignore what they do not know); unknown frame types return null so a
 * newer server can add some. Throws FrameError for text that is not a JSON
 * object or a known frame missing its essential fields.
 */
export function decodeFrame(text: string): ServerFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new FrameError("frame is not valid JSON");
  }
  return checkFrame(v);
}

/**
 * Checks a decoded frame (of either encoding): null for an unknown type,
 * FrameError for a known one without its essential fields.
 */
export function checkFrame(v: unknown): ServerFrame | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new FrameError("frame is not an object");
  }
  const f = v as Record<string, unknown>;
  if (typeof f.type !== "string") throw new FrameError("frame has no type");
  if (!FRAME_TYPES.has(f.type)) return null;
  switch (f.type) {
    case "reply":
      if (typeof f.id !== "number" || f.id <= 0) throw new FrameError("reply without id");
      break;
    case "message":
      if (typeof f.room !== "string") throw new FrameError("message without room");
      if (!f.transient && (typeof f.offset !== "number" || typeof f.epoch !== "string")) {
        throw new FrameError("message without offset or epoch");
      }
      break;
    case "presence":
      if (typeof f.room !== "string" || typeof f.offset !== "number" || typeof f.epoch !== "string" || typeof f.member !== "object" || f.member === null) {
        throw new FrameError("presence frame without room, offset, epoch or member");
      }
      break;
    case "metrics":
      if (typeof f.room !== "string" || typeof f.metrics !== "object" || f.metrics === null) {
        throw new FrameError("metrics frame without room or metrics");
      }
      break;
    case "error":
      if (typeof f.error !== "object" || f.error === null) throw new FrameError("error frame without error");
      break;
  }
  return f as unknown as ServerFrame;
}
