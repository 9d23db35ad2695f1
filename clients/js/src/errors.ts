import { lookupClose, type RetryPolicy } from "./closecodes.js";

/** Base class of every error the SDK reports. */
export class RoomcastError extends Error {
  override name = "RoomcastError";
}

/** The server answered a command with an error reply (docs/protocol.md "Error codes"). */
export class ReplyError extends RoomcastError {
  override name = "ReplyError";
  constructor(
    /** Stable error code, e.g. "forbidden", "not_joined"; switch on it. */
    readonly code: string,
    message: string,
    /** The command's op. */
    readonly op: string,
  ) {
    super(`roomcast: ${op}: ${code}: ${message}`);
  }
}

/** The connection closed with a WebSocket close code. */
export class CloseError extends RoomcastError {
  override name = "CloseError";
  /** The code's name in the close-code table, e.g. "forbidden", "token_expired". */
  readonly codeName: string;
  /** What the close-code table says a client should do. */
  readonly retry: RetryPolicy;
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    const info = lookupClose(code);
    super(`roomcast: connection closed: ${code} ${info.name}${reason ? ` (${reason})` : ""}`);
    this.codeName = info.name;
    this.retry = info.retry;
  }
}

/**
 * The connection was lost while a command was in flight (`sent`: the server
 * may have seen it) or before it could be written.
 */
export class DisconnectedError extends RoomcastError {
  override name = "DisconnectedError";
  constructor(
    readonly sent: boolean,
    override readonly cause?: unknown,
  ) {
    super("roomcast: disconnected");
  }
}

/** The client was closed (close(), or a terminal close code: see `cause`). */
export class ClosedError extends RoomcastError {
  override name = "ClosedError";
  constructor(override readonly cause?: unknown) {
    super(cause instanceof Error ? `roomcast: client closed: ${cause.message}` : "roomcast: client closed");
  }
}

/** A command or connection attempt did not complete in time. */
export class TimeoutError extends RoomcastError {
  override name = "TimeoutError";
}

/** getToken() failed. */
export class TokenError extends RoomcastError {
  override name = "TokenError";
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}
