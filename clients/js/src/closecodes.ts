/**
 * The close-code table of docs/protocol.md ("Close codes"), which SDKs use
 * to decide between reconnecting and giving up. test/closecodes.test.ts
 * checks this copy against the doc and against pkg/protocol/errors.go.
 */

/** What a client should do after its connection closed with a code. */
export type RetryPolicy =
  /** Reconnect with exponential backoff and full jitter, then resume. */
  | "backoff"
  /** Reconnect at once (small jitter), to any node, then resume. */
  | "now"
  /** Get a new token (getToken), then reconnect and resume. */
  | "refresh_token"
  /** Terminal: reconnecting would fail the same way. */
  | "never";

export interface CloseInfo {
  code: number;
  name: string;
  retry: RetryPolicy;
}

/** The documented close codes, in code order. */
export const CLOSE_CODES: readonly CloseInfo[] = Object.freeze([
  { code: 1000, name: "normal", retry: "never" },
  { code: 1002, name: "protocol_error", retry: "never" },
  { code: 1003, name: "unsupported_data", retry: "never" },
  { code: 1007, name: "invalid_payload", retry: "never" },
  { code: 1009, name: "message_too_big", retry: "never" },
  { code: 1011, name: "internal_error", retry: "backoff" },
  { code: 4000, name: "server_shutdown", retry: "now" },
  { code: 4001, name: "invalid_token", retry: "never" },
  { code: 4002, name: "token_expired", retry: "refresh_token" },
  { code: 4003, name: "forbidden", retry: "never" },
  { code: 4004, name: "origin_rejected", retry: "never" },
  { code: 4005, name: "kicked", retry: "never" },
  { code: 4006, name: "rate_limited", retry: "backoff" },
  { code: 4007, name: "slow_consumer", retry: "backoff" },
  { code: 4008, name: "heartbeat_timeout", retry: "backoff" },
  { code: 4009, name: "unsupported_protocol", retry: "never" },
] as const);

const byCode = new Map(CLOSE_CODES.map((c) => [c.code, c]));

/**
 * The table entry for a close code. Codes outside the table (1001 going
 * away, 1006 abnormal closure, …) are network events: back off and
 * reconnect.
 */
export function lookupClose(code: number): CloseInfo {
  return byCode.get(code) ?? { code, name: code === 1006 ? "abnormal_closure" : code === 1001 ? "going_away" : "unknown", retry: "backoff" };
}

/**
 * The retry policy for a close, given whether the client can get a new
 * token: 4002 without a token provider is terminal (the same token would be
 * refused again).
 */
export function closePolicy(code: number, canRefreshToken: boolean): RetryPolicy {
  const r = lookupClose(code).retry;
  if (r === "refresh_token" && !canRefreshToken) return "never";
  return r;
}
