import { describe, expect, it } from "vitest";
import { WebhookVerificationError, parseSignatures, signWebhook, verifyWebhook } from "../src/webhooks.js";

// The Standard Webhooks reference vector (also in pkg/webhooks/signature_test.go).
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const ts = 1614265330;
const body = '{"test": 2432232314}';
const sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const now = ts * 1000;

const headers = (s = sig, t = String(ts), i = id) => ({ "webhook-id": i, "webhook-timestamp": t, "webhook-signature": s });

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof WebhookVerificationError) return e.code;
    throw e;
  }
  return "ok";
}

describe("webhooks", () => {
  it("signs the reference vector", () => {
    expect(signWebhook(secret, id, ts, body)).toBe(sig);
    expect(signWebhook(secret, id, ts, new TextEncoder().encode(body))).toBe(sig);
  });

  it("verifies the reference vector from Node headers, fetch Headers and any header case", () => {
    expect(verifyWebhook(secret, headers(), body, { now })).toEqual({ id, timestamp: ts, payload: { test: 2432232314 } });
    expect(verifyWebhook(secret, new Headers(headers()), body, { now }).id).toBe(id);
    expect(verifyWebhook(secret, { "Webhook-Id": id, "WEBHOOK-TIMESTAMP": String(ts), "webhook-signature": [sig] }, body, { now }).id).toBe(id);
  });

  it("accepts any one of several signatures and secrets (rotation)", () => {
    const other = "whsec_" + Buffer.alloc(32, 7).toString("base64");
    const both = `${signWebhook(other, id, ts, body)} ${sig}`;
    expect(code(() => verifyWebhook(secret, headers(both), body, { now }))).toBe("ok");
    expect(code(() => verifyWebhook([other, secret], headers(sig), body, { now }))).toBe("ok");
    expect(code(() => verifyWebhook(other, headers(sig), body, { now }))).toBe("signature");
  });

  it("refuses what does not verify", () => {
    const cases: Record<string, [ReturnType<typeof headers> | Record<string, string>, string, number, string]> = {
      "tampered body": [headers(), '{"test": 2432232315}', now, "signature"],
      "other id": [headers(sig, String(ts), "msg_other"), body, now, "signature"],
      "other timestamp": [headers(sig, String(ts + 1)), body, now + 1000, "signature"],
      "too old": [headers(), body, now + 301_000, "timestamp"],
      "too new": [headers(), body, now - 301_000, "timestamp"],
      "not a time": [headers(sig, "soon"), body, now, "timestamp"],
      "other version": [headers(sig.replace("v1,", "v2,")), body, now, "signature"],
      "truncated signature": [headers(sig.slice(0, -4)), body, now, "signature"],
      "garbage signature": [headers("v1,@@@@"), body, now, "signature"],
      "no signature": [{ "webhook-id": id, "webhook-timestamp": String(ts) }, body, now, "missing_headers"],
      "no id": [{ "webhook-timestamp": String(ts), "webhook-signature": sig }, body, now, "missing_headers"],
    };
    for (const [name, [h, b, n, want]] of Object.entries(cases)) {
      expect(code(() => verifyWebhook(secret, h, b, { now: n })), name).toBe(want);
    }
  });

  it("honours a custom tolerance", () => {
    expect(code(() => verifyWebhook(secret, headers(), body, { now: now + 30_000, toleranceSeconds: 10 }))).toBe("timestamp");
    expect(code(() => verifyWebhook(secret, headers(), body, { now: now + 30_000, toleranceSeconds: 60 }))).toBe("ok");
  });

  it("refuses a secret that is not base64", () => {
    expect(code(() => verifyWebhook("whsec_not base64!", headers(), body, { now }))).toBe("secret");
  });

  it("parses at most 16 v1 signatures and skips malformed ones", () => {
    expect(parseSignatures(`v1a,xyz v1,a ${sig}`)).toHaveLength(1);
    expect(parseSignatures(Array(20).fill(sig).join(" "))).toHaveLength(16);
  });
});
