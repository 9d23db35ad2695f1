import type { Position } from "./protocol.js";

/** What to do with a received message or presence event of a followed room. */
export type Verdict =
  /** Deliver it; it is the next one. */
  | { kind: "deliver" }
  /** Already delivered (a replay overlapping live traffic): drop it. */
  | { kind: "duplicate" }
  /** Deliver it, and report that the room's epoch changed (offsets restarted). */
  | { kind: "epoch_change"; old: Position };

/**
 * classify decides, from the last position a room delivered (`last`, or null
 * before any), what to do with a non-transient message at `pos`. Epochs are
 * compared before offsets: within one epoch an offset at or below the last
 * one is a duplicate; another epoch means the room's state was reset.
 */
export function classify(last: Position | null, pos: Position): Verdict {
  if (last === null || last.epoch === "") return { kind: "deliver" };
  if (last.epoch === pos.epoch) {
    return pos.offset <= last.offset ? { kind: "duplicate" } : { kind: "deliver" };
  }
  return { kind: "epoch_change", old: last };
}
