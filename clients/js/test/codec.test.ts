import { describe, expect, it } from "vitest";
import { FrameError, decodeFrame, encodeCommand } from "../src/protocol.js";
import { isHTTPToken, refreshDelay, tokenExpiry } from "../src/jwt.js";

describe("encodeCommand", () => {
  it("encodes the documented examples", () => {
    expect(encodeCommand({ id: 1, op: "join", room: "chat.lobby" })).toBe('{"id":1,"op":"join","room":"chat.lobby"}');
    expect(encodeCommand({ id: 2, op: "publish", room: "chat.lobby", event: "msg", data: { text: "hi" }, idempotency_key: "c1-42" })).toBe(
      '{"id":2,"op":"publish","room":"chat.lobby","event":"msg","data":{"text":"hi"},"idempotency_key":"c1-42"}',
    );
    expect(encodeCommand({ id: 3, op: "join", room: "r", since: { offset: 42, epoch: "5d1c" } })).toBe(
      '{"id":3,"op":"join","room":"r","since":{"offset":42,"epoch":"5d1c"}}',
    );
  });

  it("leaves out undefined fields and transient:false, keeps null data", () => {
    expect(encodeCommand({ id: 4, op: "publish", room: "r", event: undefined, data: null, transient: false, idempotency_key: undefined })).toBe(
      '{"id":4,"op":"publish","room":"r","data":null}',
    );
    expect(encodeCommand({ id: 5, op: "publish", room: "r", data: 1, transient: true })).toBe('{"id":5,"op":"publish","room":"r","data":1,"transient":true}');
  });

  it("refuses ids the server cannot take", () => {
    for (const id of [0, -1, 1.5, 2 ** 53]) expect(() => encodeCommand({ id, op: "join", room: "r" })).toThrow(RangeError);
    expect(() => encodeCommand({ op: "join", room: "r" })).toThrow(RangeError);
  });
});

describe("decodeFrame", () => {
  it("decodes every documented frame", () => {
    const connected = decodeFrame(
      '{"type":"connected","connection_id":"9f2c","session_id":"4c0d","resume_token":"Qm9","client_id":"alice","node":"gw-1","heartbeat_ms":25000,"limits":{"max_message_bytes":65536,"max_room_name_bytes":200,"max_rooms":100,"publish_rate":50,"publish_burst":100}}',
    );
    expect(connected).toMatchObject({ type: "connected", node: "gw-1", limits: { max_rooms: 100 } });
    expect(decodeFrame('{"type":"reply","id":1,"room":"chat.lobby","position":{"offset":41,"epoch":"5d1c"}}')).toMatchObject({
      id: 1,
      position: { offset: 41, epoch: "5d1c" },
    });
    expect(decodeFrame('{"type":"reply","id":2,"error":{"code":"forbidden","message":"no"}}')).toMatchObject({ error: { code: "forbidden" } });
    expect(decodeFrame('{"type":"message","room":"r","offset":42,"epoch":"e","event":"msg","data":{"text":"hi"},"from":"alice","ts":1}')).toMatchObject({
      offset: 42,
      data: { text: "hi" },
    });
    expect(decodeFrame('{"type":"message","room":"r","transient":true,"data":1,"from":"a","ts":1}')).toMatchObject({ transient: true });
    expect(
      decodeFrame('{"type":"presence","room":"r","action":"join","member":{"client_id":"ada","connection_id":"2bd1","data":{"name":"Ada"},"since":1},"offset":7,"epoch":"91e0","ts":4}'),
    ).toMatchObject({ action: "join", member: { client_id: "ada" }, offset: 7 });
    expect(decodeFrame('{"type":"error","error":{"code":"bad_request","message":"x"}}')).toMatchObject({ type: "error" });
  });

  it("keeps unknown fields and ignores unknown frame types", () => {
    expect(decodeFrame('{"type":"reply","id":9,"future":true}')).toMatchObject({ future: true });
    expect(decodeFrame('{"type":"gossip","room":"r"}')).toBeNull();
  });

  it("rejects frames it cannot use", () => {
    for (const bad of ["", "nope", "[1]", "null", '{"id":1}', '{"type":"reply"}', '{"type":"message","room":"r","data":1}', '{"type":"presence","room":"r"}', '{"type":"error"}']) {
      expect(() => decodeFrame(bad), bad).toThrow(FrameError);
    }
  });
});

function jwt(claims: object): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", kid: "k1" })}.${b64(claims)}.sig`;
}

describe("tokens", () => {
  it("reads exp without verifying", () => {
    expect(tokenExpiry(jwt({ exp: 1763900000, sub: "ä" }))).toBe(1763900000 * 1000);
    expect(tokenExpiry(jwt({ sub: "x" }))).toBe(0);
    expect(tokenExpiry("not-a-jwt")).toBe(0);
    expect(tokenExpiry("a.!!!.c")).toBe(0);
  });

  it("refreshes a tenth of the life before expiry, at least 2 s and at most half", () => {
    expect(refreshDelay(0, 3600_000)).toBe(3240_000); // 1 h: 6 min early
    expect(refreshDelay(0, 10_000)).toBe(8_000); // 10 s: 2 s early
    expect(refreshDelay(0, 3_000)).toBe(1_500); // 3 s: half
    expect(refreshDelay(0, 0)).toBeNull();
  });

  it("knows which tokens fit in Sec-WebSocket-Protocol", () => {
    expect(isHTTPToken(jwt({ exp: 1 }))).toBe(true);
    expect(isHTTPToken("a b")).toBe(false);
    expect(isHTTPToken("a,b")).toBe(false);
    expect(isHTTPToken("")).toBe(false);
  });
});

describe("history", () => {
  it("encodes the documented query and decodes its reply", () => {
    expect(encodeCommand({ id: 8, op: "history", room: "chat.lobby", direction: "backward", limit: 2 })).toBe(
      '{"id":8,"op":"history","room":"chat.lobby","direction":"backward","limit":2}',
    );
    expect(encodeCommand({ id: 9, op: "history", room: "r", epoch: "e", from_offset: 3, to_offset: 9, start: 1, end: 2, cursor: "AQ" })).toBe(
      '{"id":9,"op":"history","room":"r","epoch":"e","from_offset":3,"to_offset":9,"start":1,"end":2,"cursor":"AQ"}',
    );
    const r = decodeFrame(
      '{"type":"reply","id":8,"room":"chat.lobby","messages":[{"offset":42,"epoch":"5d1c","event":"msg","data":{"text":"hi"},"from":"alice","ts":1763900000000}],"cursor":"AQ"}',
    );
    expect(r).toMatchObject({ messages: [{ offset: 42, data: { text: "hi" } }], cursor: "AQ" });
  });
});

describe("live room metrics", () => {
  it("encodes metrics.subscribe and decodes the documented metrics frame", () => {
    expect(encodeCommand({ id: 8, op: "metrics.subscribe", room: "chat.lobby", interval_ms: 2000 })).toBe(
      '{"id":8,"op":"metrics.subscribe","room":"chat.lobby","interval_ms":2000}',
    );
    const f = decodeFrame(
      '{"type":"metrics","room":"chat.lobby","metrics":{"members":12,"clients":9,"connections":14,"message_rate":3.5},"ts":1763900000000}',
    );
    expect(f).toMatchObject({ type: "metrics", room: "chat.lobby", metrics: { members: 12, clients: 9, connections: 14, message_rate: 3.5 } });
    expect(() => decodeFrame('{"type":"metrics"}')).toThrow(FrameError);
  });
});
