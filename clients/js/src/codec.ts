/**
 * The two wire encodings of the protocol (docs/protocol.md): JSON text
 * frames ("roomcast.v1.json", the default) and MessagePack binary frames
 * ("roomcast.v1.msgpack"). Both carry the same model with the same keys.
 *
 * Payloads reach the application the same way whichever codec a client
 * uses: a JSON value as that value, binary bytes as a Uint8Array. On
 * msgpack, bytes travel as bin and JSON values as a str of their JSON text;
 * on JSON, bytes travel as base64 with `"encoding":"base64"`.
 */
// Only types statically: the SDK's modules load in browsers without a
// bundler (examples/chat serves dist/ as is), where a bare package import
// would fail for every app. @msgpack/msgpack loads on first use instead
// (loadCodec), so JSON apps never need it.
import type * as MsgpackLib from "@msgpack/msgpack";
import {
  ENCODING_BASE64,
  FrameError,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  checkFrame,
  commandFields,
  decodeFrame,
  encodeCommand,
  type Command,
  type ServerFrame,
} from "./protocol.js";

/** The name of a codec, as ClientOptions.codec takes it. */
export type CodecName = "json" | "msgpack";

export interface Codec {
  readonly name: CodecName;
  /** The Sec-WebSocket-Protocol value that selects it. */
  readonly subprotocol: string;
  /** Binary frames (msgpack) or text frames (JSON). */
  readonly binary: boolean;
  /** One command as a frame: text for JSON, bytes for msgpack. */
  encode(cmd: Command): string | Uint8Array;
  /**
   * One frame from the server (a string for a text frame; an ArrayBuffer,
   * a typed array or a Node Buffer for a binary one). Payloads come out as
   * the application sees them. Null for an unknown frame type; FrameError
   * for anything unusable, a frame of the other kind included.
   */
  decode(data: unknown): ServerFrame | null;
}

/** A codec of text frames (JSON). */
export interface TextCodec extends Codec {
  encode(cmd: Command): string;
}

/** A codec of binary frames (msgpack). */
export interface BinaryCodec extends Codec {
  encode(cmd: Command): Uint8Array;
}

let mp: typeof MsgpackLib | undefined;

/**
 * The codec of a name, ready to use: "msgpack" loads @msgpack/msgpack the
 * first time (a dynamic import, which a bundler resolves like any other).
 */
export async function loadCodec(name: CodecName | undefined): Promise<Codec> {
  const codec = codecFor(name);
  if (codec.binary && !mp) mp = await import("@msgpack/msgpack");
  return codec;
}

function msgpackLib(): typeof MsgpackLib {
  if (!mp) throw new Error('roomcast: the msgpack codec is not loaded; await loadCodec("msgpack") first');
  return mp;
}

/** Base64 of bytes (RFC 4648, padded), in browsers and Node alike. */
export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** The bytes of a base64 string; FrameError if it is not base64. */
export function fromBase64(s: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    throw new FrameError("data is not base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Applies fn to every payload-carrying object of a decoded frame. */
function eachPayload(f: Record<string, unknown>, fn: (o: Record<string, unknown>) => void): void {
  switch (f.type) {
    case "message":
      fn(f);
      break;
    case "presence":
      if (isObject(f.member)) fn(f.member);
      break;
    case "reply":
      for (const list of [f.messages, f.members]) {
        if (Array.isArray(list)) for (const o of list) if (isObject(o)) fn(o);
      }
      break;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
}

export const jsonCodec: TextCodec = {
  name: "json",
  subprotocol: SUBPROTOCOL_JSON,
  binary: false,
  encode(cmd: Command): string {
    if (cmd.data instanceof Uint8Array) {
      return encodeCommand({ ...cmd, data: toBase64(cmd.data), encoding: ENCODING_BASE64 });
    }
    return encodeCommand(cmd);
  },
  decode(data: unknown): ServerFrame | null {
    if (typeof data !== "string") throw new FrameError("binary frame on the JSON subprotocol");
    const f = decodeFrame(data);
    if (!f) return null;
    eachPayload(f as unknown as Record<string, unknown>, (o) => {
      if (o.encoding === undefined) return;
      if (o.encoding !== ENCODING_BASE64 || typeof o.data !== "string") {
        throw new FrameError(`data with encoding ${JSON.stringify(o.encoding)} the client cannot read`);
      }
      o.data = fromBase64(o.data);
      delete o.encoding;
    });
    return f;
  },
};

/** Bytes of a binary frame, however the WebSocket implementation hands them over. */
function frameBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data; // Node Buffers too
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new FrameError(typeof data === "string" ? "text frame on the msgpack subprotocol" : "binary frame of an unknown kind (set binaryType to arraybuffer)");
}

export const msgpackCodec: BinaryCodec = {
  name: "msgpack",
  subprotocol: SUBPROTOCOL_MSGPACK,
  binary: true,
  encode(cmd: Command): Uint8Array {
    const out = commandFields(cmd);
    if (cmd.data instanceof Uint8Array) {
      if (cmd.data.length > 0) out.data = cmd.data; // bin
      else delete out.data; // empty bytes are no data
    } else if (cmd.data !== undefined) {
      out.data = JSON.stringify(cmd.data); // a JSON value travels as a str of its text
    }
    return msgpackLib().encode(out);
  },
  decode(data: unknown): ServerFrame | null {
    let v: unknown;
    try {
      v = msgpackLib().decode(frameBytes(data));
    } catch (err) {
      if (err instanceof FrameError) throw err;
      throw new FrameError("frame is not valid msgpack");
    }
    if (!isObject(v)) throw new FrameError("frame is not a msgpack map");
    eachPayload(v, (o) => {
      if (typeof o.data !== "string") return; // bin: the bytes as they are
      try {
        o.data = JSON.parse(o.data);
      } catch {
        throw new FrameError("data str is not JSON text");
      }
    });
    return checkFrame(v);
  },
};

/** The codec of a name (undefined: JSON); see loadCodec for msgpack. */
export function codecFor(name: CodecName | undefined): Codec {
  switch (name ?? "json") {
    case "json":
      return jsonCodec;
    case "msgpack":
      return msgpackCodec;
  }
  throw new TypeError(`roomcast: unknown codec ${JSON.stringify(name)}; use "json" or "msgpack"`);
}
