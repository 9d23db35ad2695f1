/**
 * tokenExpiry reads a JWT's exp claim (Unix seconds) without verifying it
 * (the server does that): ms since the epoch, or 0 when there is none.
 */
export function tokenExpiry(token: string): number {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return 0;
  try {
    const json = JSON.parse(decodeBase64Url(parts[1])) as { exp?: unknown };
    return typeof json.exp === "number" && json.exp > 0 ? json.exp * 1000 : 0;
  } catch {
    return 0;
  }
}

function decodeBase64Url(s: string): string {
  let b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  while (b64.length % 4) b64 += "=";
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/**
 * refreshDelay is how long after `connectedAt` to replace a token that
 * expires at `exp` (both ms): a tenth of its life before exp, at least 2 s
 * and at most half of it — as the Go SDK does. null when exp is unknown.
 */
export function refreshDelay(connectedAt: number, exp: number): number | null {
  if (!exp) return null;
  const life = exp - connectedAt;
  const margin = Math.min(Math.max(life / 10, 2000), life / 2);
  return Math.max(0, exp - margin - connectedAt);
}

/** Whether s can travel as one Sec-WebSocket-Protocol value (an RFC 7230 token). */
export function isHTTPToken(s: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s);
}
