import type { RetryPolicy } from "./closecodes.js";

export interface BackoffOptions {
  /** First window, ms (attempt 1 waits a random time in [0, base]). */
  baseDelay: number;
  /** Largest window, ms. */
  maxDelay: number;
}

/**
 * The wait before reconnect attempt `attempt` (from 1): full jitter over an
 * exponentially growing window — a random time in
 * [0, min(max, base·2^(attempt-1))] — or under 100 ms when the node asked
 * clients to move on at once ("now") or the token just needs refreshing.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  if (policy === "now" || policy === "refresh_token") {
    return Math.floor(random() * 100);
  }
  const exp = Math.min(Math.max(attempt, 1) - 1, 30);
  let window = opts.baseDelay * 2 ** exp;
  if (!(window > 0) || window > opts.maxDelay) window = opts.maxDelay;
  return Math.floor(random() * (window + 1));
}
