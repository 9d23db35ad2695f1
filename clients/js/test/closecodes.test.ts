import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CLOSE_CODES, closePolicy, lookupClose } from "../src/closecodes.js";

const repo = fileURLToPath(new URL("../../../", import.meta.url));

// "client should" column of docs/protocol.md → policy.
const docPolicy: Record<string, string> = {
  stop: "never",
  "back off, reconnect": "backoff",
  "reconnect now, to any node": "now",
  "get a new token, reconnect": "refresh_token",
};

describe("close-code table", () => {
  it("matches docs/protocol.md", () => {
    const doc = readFileSync(repo + "docs/protocol.md", "utf8");
    const section = doc.split(/^## Close codes$/m)[1]!.split(/^## /m)[0]!;
    const rows = section
      .split("\n")
      .filter((l) => /^\| \d{4} \|/.test(l))
      .map((l) => l.split("|").map((c) => c.trim()))
      .map((c) => ({ code: Number(c[1]), name: c[2]!.replace(/`/g, ""), retry: docPolicy[c[4]!] ?? `unknown: ${c[4]}` }));
    expect(rows.length).toBeGreaterThan(10);
    expect(rows).toEqual(CLOSE_CODES.map((c) => ({ ...c })));
  });

  it("matches pkg/protocol/errors.go", () => {
    const src = readFileSync(repo + "pkg/protocol/errors.go", "utf8");
    const consts = new Map<string, number>();
    for (const m of src.matchAll(/^\s*(Close\w+)\s+CloseCode = (\d+)/gm)) consts.set(m[1]!, Number(m[2]));
    const goRetry: Record<string, string> = { RetryBackoff: "backoff", RetryNow: "now", RetryRefreshToken: "refresh_token", RetryNever: "never" };
    const table = src.split("var CloseCodes = []CloseInfo{")[1]!.split("\n}")[0]!;
    const rows = [...table.matchAll(/\{(Close\w+), "(\w+)", (Retry\w+)\}/g)].map((m) => ({
      code: consts.get(m[1]!),
      name: m[2],
      retry: goRetry[m[3]!],
    }));
    expect(rows).toEqual(CLOSE_CODES.map((c) => ({ ...c })));
  });

  it("treats codes outside the table as network events", () => {
    expect(lookupClose(1006).retry).toBe("backoff");
    expect(lookupClose(1001).retry).toBe("backoff");
    expect(lookupClose(4999).retry).toBe("backoff");
  });

  it("gives up on terminal codes and on 4002 without a token provider", () => {
    expect(closePolicy(4001, true)).toBe("never");
    expect(closePolicy(4003, true)).toBe("never");
    expect(closePolicy(1000, true)).toBe("never");
    expect(closePolicy(4002, true)).toBe("refresh_token");
    expect(closePolicy(4002, false)).toBe("never");
    expect(closePolicy(4000, false)).toBe("now");
    expect(closePolicy(4008, false)).toBe("backoff");
  });
});
