import { describe, expect, it } from "vitest";
import { backoffDelay } from "../src/backoff.js";

const opts = { baseDelay: 200, maxDelay: 10000 };

describe("backoffDelay", () => {
  it("grows the window exponentially up to the max (full jitter: the top of the window at random→1)", () => {
    const top = (a: number) => backoffDelay("backoff", a, opts, () => 0.999999999);
    expect([1, 2, 3, 4, 5, 6, 7].map(top)).toEqual([200, 400, 800, 1600, 3200, 6400, 10000]);
    expect(top(100)).toBe(10000);
    expect(top(1e9)).toBe(10000);
  });

  it("can be zero (full jitter: the bottom of the window at random→0)", () => {
    for (const a of [1, 5, 50]) expect(backoffDelay("backoff", a, opts, () => 0)).toBe(0);
  });

  it("stays within [0, window] for random draws", () => {
    for (let a = 1; a <= 12; a++) {
      const window = Math.min(10000, 200 * 2 ** (a - 1));
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay("backoff", a, opts);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(window);
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });

  it("spreads attempts out (not all clients at once)", () => {
    const seen = new Set(Array.from({ length: 100 }, () => backoffDelay("backoff", 6, opts)));
    expect(seen.size).toBeGreaterThan(50);
  });

  it("reconnects within 100 ms when the node drains or the token needs refreshing", () => {
    for (const p of ["now", "refresh_token"] as const) {
      for (let i = 0; i < 100; i++) expect(backoffDelay(p, 7, opts)).toBeLessThan(100);
    }
  });
});
