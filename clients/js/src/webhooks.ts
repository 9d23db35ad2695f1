/**
 * Webhook verification for Node backends (Standard Webhooks): Roomcast
 * signs each delivery with the endpoint's secret ("whsec_<base64 key>") and
 * sends
 *
 *   webhook-id:        a unique delivery id (use it to dedupe retries)
 *   webhook-timestamp: Unix seconds when it was signed
 *   webhook-signature: space-separated "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>"
 *
 * verifyWebhook checks the timestamp against a tolerance (default 5 min) and
 * one of the signatures against one of the secrets (several during a
 * rotation), comparing in constant time. Pass the raw body exactly as
 * received: re-serialized JSON does not verify.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const HEADER_ID = "webhook-id";
export const HEADER_TIMESTAMP = "webhook-timestamp";
export const HEADER_SIGNATURE = "webhook-signature";
export const SECRET_PREFIX = "whsec_";
/** Default tolerance between webhook-timestamp and now, seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
/** At most this many signatures of a header are looked at. */
export const MAX_SIGNATURES = 16;

export type WebhookErrorCode = "missing_headers" | "timestamp" | "signature" | "secret";

export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
  constructor(
    readonly code: WebhookErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Headers as Node gives them (IncomingMessage.headers), a fetch Headers, or a plain record. */
export type WebhookHeaders =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** Allowed distance between webhook-timestamp and now, seconds (default 300). */
  toleranceSeconds?: number;
  /** Now, ms since the epoch (default Date.now()); for tests. */
  now?: number;
}

export interface VerifiedWebhook<T = unknown> {
  id: string;
  timestamp: number;
  /** The body parsed as JSON. */
  payload: T;
}

function header(h: WebhookHeaders, name: string): string {
  if (typeof (h as { get?: unknown }).get === "function") {
    return (h as { get(n: string): string | null }).get(name) ?? "";
  }
  const rec = h as Record<string, string | string[] | undefined>;
  let v = rec[name];
  if (v === undefined) {
    const k = Object.keys(rec).find((k) => k.toLowerCase() === name);
    v = k === undefined ? undefined : rec[k];
  }
  return Array.isArray(v) ? (v[0] ?? "") : (v ?? "");
}

function secretKey(secret: string): Buffer {
  const raw = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(raw) || raw.length % 4 !== 0 || raw.length === 0) {
    throw new WebhookVerificationError("secret", "webhook secret is not valid base64");
  }
  return Buffer.from(raw, "base64");
}

/** The "v1,<base64>" signature of id.timestamp.body under secret. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string | Uint8Array): string {
  return "v1," + mac(secretKey(secret), id, timestamp, body).toString("base64");
}

function mac(key: Buffer, id: string, timestamp: number, body: string | Uint8Array): Buffer {
  const h = createHmac("sha256", key);
  h.update(`${id}.${timestamp}.`);
  h.update(body);
  return h.digest();
}

/** The decoded v1 signatures of a webhook-signature header; others and malformed ones are skipped. */
export function parseSignatures(value: string): Buffer[] {
  const out: Buffer[] = [];
  for (const field of value.split(/\s+/)) {
    if (out.length === MAX_SIGNATURES) break;
    const comma = field.indexOf(",");
    if (comma < 0 || field.slice(0, comma) !== "v1") continue;
    const sig = field.slice(comma + 1);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig) || sig.length % 4 !== 0) continue;
    const b = Buffer.from(sig, "base64");
    if (b.length === 32) out.push(b);
  }
  return out;
}

/**
 * Verifies a webhook delivery and returns its id, timestamp and parsed
 * payload; throws WebhookVerificationError otherwise. `secret` may be a list
 * (during a rotation any one may match).
 */
export function verifyWebhook<T = unknown>(
  secret: string | string[],
  headers: WebhookHeaders,
  body: string | Uint8Array,
  opts: VerifyOptions = {},
): VerifiedWebhook<T> {
  const id = header(headers, HEADER_ID);
  const tsRaw = header(headers, HEADER_TIMESTAMP);
  const sigs = header(headers, HEADER_SIGNATURE);
  if (!id || !tsRaw || !sigs) {
    throw new WebhookVerificationError("missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required");
  }
  if (!/^-?\d{1,15}$/.test(tsRaw)) {
    throw new WebhookVerificationError("timestamp", "webhook-timestamp is not a Unix time");
  }
  const ts = Number(tsRaw);
  const tolerance = opts.toleranceSeconds && opts.toleranceSeconds > 0 ? opts.toleranceSeconds : DEFAULT_TOLERANCE_SECONDS;
  const now = (opts.now ?? Date.now()) / 1000;
  if (Math.abs(now - ts) > tolerance) {
    throw new WebhookVerificationError("timestamp", "webhook-timestamp is outside the tolerance");
  }
  const got = parseSignatures(sigs);
  let ok = false;
  for (const s of Array.isArray(secret) ? secret : [secret]) {
    const want = mac(secretKey(s), id, ts, body);
    for (const g of got) {
      // No early exit: the time taken does not tell which one matched.
      if (timingSafeEqual(g, want)) ok = true;
    }
  }
  if (!ok) throw new WebhookVerificationError("signature", "no webhook-signature matches");
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  let payload: T;
  try {
    payload = JSON.parse(text) as T;
  } catch {
    payload = text as unknown as T;
  }
  return { id, timestamp: ts, payload };
}
