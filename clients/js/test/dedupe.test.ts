import { describe, expect, it } from "vitest";
import { classify } from "../src/dedupe.js";

describe("classify", () => {
  it("delivers anything before the first position", () => {
    expect(classify(null, { offset: 7, epoch: "e1" })).toEqual({ kind: "deliver" });
    expect(classify({ offset: 0, epoch: "" }, { offset: 1, epoch: "e1" })).toEqual({ kind: "deliver" });
  });

  it("drops offsets at or below the last one of the same epoch", () => {
    const last = { offset: 42, epoch: "e1" };
    expect(classify(last, { offset: 42, epoch: "e1" }).kind).toBe("duplicate");
    expect(classify(last, { offset: 3, epoch: "e1" }).kind).toBe("duplicate");
    expect(classify(last, { offset: 43, epoch: "e1" }).kind).toBe("deliver");
  });

  it("compares epochs before offsets", () => {
    const last = { offset: 42, epoch: "e1" };
    expect(classify(last, { offset: 1, epoch: "e2" })).toEqual({ kind: "epoch_change", old: last });
    expect(classify(last, { offset: 99, epoch: "e2" }).kind).toBe("epoch_change");
  });

  it("delivers a replay overlapping live traffic exactly once, in order", () => {
    // Replay 43..47 after a resume at 42, with live 45..50 interleaved the
    // way two connections (make-before-break) can deliver them.
    const arrivals = [43, 44, 45, 45, 46, 44, 47, 46, 48, 47, 49, 50, 50];
    let last = { offset: 42, epoch: "e1" };
    const delivered: number[] = [];
    for (const offset of arrivals) {
      const v = classify(last, { offset, epoch: "e1" });
      if (v.kind === "duplicate") continue;
      delivered.push(offset);
      last = { offset, epoch: "e1" };
    }
    expect(delivered).toEqual([43, 44, 45, 46, 47, 48, 49, 50]);
  });
});
