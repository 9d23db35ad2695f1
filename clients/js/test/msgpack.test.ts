import { decode, encode } from "@msgpack/msgpack";
import { readFileSync, readdirSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { RoomcastClient, type WebSocketLike } from "../src/client.js";
import { codecFor, fromBase64, jsonCodec, loadCodec, msgpackCodec, toBase64 } from "../src/codec.js";
import { FrameError, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, encodeCommand } from "../src/protocol.js";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
/** Bytes a text encoding cannot carry: zero bytes, invalid UTF-8. */
const payload = Uint8Array.from([0, 255, 254, 195, 40, 0]);

// Frames written by the Go codec (pkg/protocol, msgpack.go), so the two
// SDKs are checked against the same bytes.
const golden = {
  connected:
    "88a474797065a9636f6e6e6563746564ad636f6e6e656374696f6e5f6964a26331aa73657373696f6e5f6964a27331ac726573756d655f746f6b656ea27231a9636c69656e745f6964a5616c696365a46e6f6465a467772d31ac6865617274626561745f6d73cd61a8a66c696d69747385b16d61785f6d6573736167655f6279746573ce00010000b36d61785f726f6f6d5f6e616d655f6279746573ccc8a96d61785f726f6f6d7364ac7075626c6973685f72617465cb4049000000000000ad7075626c6973685f627572737464",
  binaryMessage:
    "88a474797065a76d657373616765a4726f6f6da172a66f66667365742aa565706f6368a26531a56576656e74a57374617465a464617461c40600fffec32800a466726f6da5616c696365a27473cf0000019ab0a20700",
  jsonMessage:
    "87a474797065a76d657373616765a4726f6f6da172a66f66667365742ba565706f6368a26531a464617461ad7b2274657874223a226869227da466726f6da3626f62a27473cf0000019ab0a20701",
  historyReply:
    "84a474797065a57265706c79a2696407a4726f6f6da172a86d657373616765739285a66f66667365742aa565706f6368a26531a464617461c40600fffec32800a466726f6da5616c696365a274730185a66f66667365742ba565706f6368a26531a464617461a55b312c325da466726f6da3626f62a2747302",
  presence:
    "87a474797065a870726573656e6365a4726f6f6da172a6616374696f6ea46a6f696ea66d656d62657284a9636c69656e745f6964a3616461ad636f6e6e656374696f6e5f6964a27339a464617461ae7b226e616d65223a22416461227da573696e636505a66f666673657403a565706f6368a27031a2747306",
  /** {id:3, op:"publish", room:"r", event:"state", data:bin, idempotency_key:"k1"} */
  publishCommand: "86a2696403a26f70a77075626c697368a4726f6f6da172a56576656e74a57374617465a464617461c40600fffec32800af6964656d706f74656e63795f6b6579a26b31",
};

describe("msgpack codec", () => {
  beforeAll(async () => {
    expect(await loadCodec("msgpack")).toBe(msgpackCodec);
  });

  it("decodes the Go codec's frames; bytes as Uint8Array, JSON text as values", () => {
    expect(msgpackCodec.decode(hex(golden.connected))).toMatchObject({ type: "connected", client_id: "alice", heartbeat_ms: 25000, limits: { max_rooms: 100, publish_rate: 50 } });
    const bin = msgpackCodec.decode(hex(golden.binaryMessage).buffer);
    expect(bin).toMatchObject({ type: "message", room: "r", offset: 42, epoch: "e1", event: "state", from: "alice", ts: 1763900000000 });
    expect((bin as { data: unknown }).data).toBeInstanceOf(Uint8Array);
    expect(Array.from((bin as { data: Uint8Array }).data)).toEqual(Array.from(payload));
    expect(msgpackCodec.decode(hex(golden.jsonMessage))).toMatchObject({ type: "message", offset: 43, data: { text: "hi" }, from: "bob" });
    const page = msgpackCodec.decode(hex(golden.historyReply)) as { messages: { data: unknown }[] };
    expect(Array.from(page.messages[0]!.data as Uint8Array)).toEqual(Array.from(payload));
    expect(page.messages[1]!.data).toEqual([1, 2]);
    expect(msgpackCodec.decode(hex(golden.presence))).toMatchObject({ type: "presence", action: "join", member: { client_id: "ada", data: { name: "Ada" } }, offset: 3 });
  });

  it("encodes commands as the Go codec does", () => {
    const b = msgpackCodec.encode({ id: 3, op: "publish", room: "r", event: "state", data: payload, transient: false, idempotency_key: "k1" });
    expect(Buffer.from(b).toString("hex")).toBe(golden.publishCommand);
  });

  it("sends JSON values as a str of their text, bytes as bin, and the JSON keys", () => {
    const v = decode(msgpackCodec.encode({ id: 9, op: "publish", room: "r", data: { a: [1, null] }, transient: true })) as Record<string, unknown>;
    expect(v).toEqual({ id: 9, op: "publish", room: "r", data: '{"a":[1,null]}', transient: true });
    const b = decode(msgpackCodec.encode({ id: 10, op: "join", room: "r", since: { offset: 4, epoch: "e" } })) as Record<string, unknown>;
    expect(b).toEqual(JSON.parse(encodeCommand({ id: 10, op: "join", room: "r", since: { offset: 4, epoch: "e" } })));
    const empty = decode(msgpackCodec.encode({ id: 11, op: "publish", room: "r", data: new Uint8Array(0) })) as Record<string, unknown>;
    expect(empty).toEqual({ id: 11, op: "publish", room: "r" });
    expect(() => msgpackCodec.encode({ id: 0, op: "join" })).toThrow(RangeError);
  });

  it("refuses what it cannot use", () => {
    for (const bad of [
      "a text frame",
      new Uint8Array([0xc1]),
      encode([1, 2]),
      encode({ type: "message", room: "r", offset: 1, epoch: "e", data: "not json" }),
      encode({ type: "reply" }),
      12,
    ]) {
      expect(() => msgpackCodec.decode(bad)).toThrow(FrameError);
    }
    expect(msgpackCodec.decode(encode({ type: "gossip" }))).toBeNull();
  });
});

describe("JSON codec", () => {
  it("carries bytes as base64 with the encoding marker, both ways", () => {
    expect(jsonCodec.encode({ id: 1, op: "publish", room: "r", data: payload })).toBe('{"id":1,"op":"publish","room":"r","data":"AP/+wygA","encoding":"base64"}');
    // What the Go gateway writes for a message published as bytes.
    const f = jsonCodec.decode('{"type":"message","room":"r","offset":42,"epoch":"e1","event":"state","data":"AP/+wygA","encoding":"base64","from":"alice","ts":1763900000000}') as unknown as Record<string, unknown>;
    expect(f.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(f.data as Uint8Array)).toEqual(Array.from(payload));
    expect(f.encoding).toBeUndefined();
    const page = jsonCodec.decode('{"type":"reply","id":2,"room":"r","messages":[{"offset":1,"epoch":"e","data":"AAE=","encoding":"base64","ts":1},{"offset":2,"epoch":"e","data":{"a":1},"ts":2}]}') as unknown as { messages: { data: unknown }[] };
    expect(Array.from(page.messages[0]!.data as Uint8Array)).toEqual([0, 1]);
    expect(page.messages[1]!.data).toEqual({ a: 1 });
    // JSON payloads are as before.
    expect(jsonCodec.encode({ id: 3, op: "publish", room: "r", data: { t: "hi" } })).toBe('{"id":3,"op":"publish","room":"r","data":{"t":"hi"}}');
    expect(() => jsonCodec.decode('{"type":"message","room":"r","transient":true,"data":"x","encoding":"hex"}')).toThrow(FrameError);
    expect(() => jsonCodec.decode(new Uint8Array([1]))).toThrow(FrameError);
  });

  it("base64 round-trips every byte value", () => {
    const all = Uint8Array.from({ length: 70000 }, (_, i) => i % 256);
    expect(Array.from(fromBase64(toBase64(all)))).toEqual(Array.from(all));
    expect(toBase64(payload)).toBe(Buffer.from(payload).toString("base64"));
    expect(() => fromBase64("!!")).toThrow(FrameError);
  });

  it("codecFor names the codecs", () => {
    expect(codecFor(undefined)).toBe(jsonCodec);
    expect(codecFor("msgpack").subprotocol).toBe(SUBPROTOCOL_MSGPACK);
    expect(codecFor("json").subprotocol).toBe(SUBPROTOCOL_JSON);
    expect(() => codecFor("cbor" as "json")).toThrow(TypeError);
  });
});

/**
 * FakeGateway is a WebSocket whose far end is the test: it answers joins
 * and publishes the way a gateway does, in the negotiated codec.
 */
class FakeGateway implements WebSocketLike {
  static last: FakeGateway | null = null;
  readyState = 0;
  protocol = "";
  binaryType = "blob";
  sent: Uint8Array[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  offset = 0;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeGateway.last = this;
    this.protocol = protocols[0]!;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
      this.push({ type: "connected", connection_id: "c", session_id: "s", resume_token: "t", client_id: "ts", node: "fake", heartbeat_ms: 25000 });
    });
  }

  /** Sends a frame as a browser with binaryType "arraybuffer" delivers it. */
  push(frame: Record<string, unknown>): void {
    const b = encode(frame);
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    this.onmessage?.({ data: this.binaryType === "arraybuffer" ? ab : new Blob([ab]) });
  }

  send(data: string | Uint8Array): void {
    if (typeof data === "string") throw new Error("text frame on msgpack");
    this.sent.push(data);
    const cmd = decode(data) as Record<string, unknown>;
    switch (cmd.op) {
      case "join":
        this.push({ type: "reply", id: cmd.id, room: cmd.room, position: { offset: this.offset, epoch: "e" } });
        break;
      case "publish":
        this.offset++;
        this.push({ type: "reply", id: cmd.id, room: cmd.room, position: { offset: this.offset, epoch: "e" } });
        // The gateway passes data through as it came: bin stays bin, str stays str.
        this.push({ type: "message", room: cmd.room, offset: this.offset, epoch: "e", event: cmd.event, data: cmd.data, from: "ts", ts: 1 });
        break;
    }
  }

  close(code = 1000, reason = ""): void {
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }));
  }
}

describe("RoomcastClient with codec msgpack", () => {
  it("negotiates msgpack and delivers bytes byte for byte, JSON as values", async () => {
    const client = new RoomcastClient({
      url: "ws://gateway.test/v1/connect",
      token: "tok",
      codec: "msgpack",
      WebSocket: FakeGateway as unknown as new (url: string, protocols?: string | string[]) => WebSocketLike,
      reconnect: false,
      watchNetwork: false,
    });
    await client.connect();
    const ws = FakeGateway.last!;
    expect(ws.protocols[0]).toBe(SUBPROTOCOL_MSGPACK);
    expect(ws.protocols.slice(1)).toEqual(["roomcast.token.tok"]);
    expect(ws.binaryType).toBe("arraybuffer");

    const room = client.room<{ state: Uint8Array; chat: { text: string } }>("game");
    const got: unknown[] = [];
    room.on("*", (data) => got.push(data));
    await room.join();
    await room.publish("state", payload);
    await room.publish("chat", { text: "hé" });

    // On the wire: a bin of the bytes, a str of the JSON text.
    const sent = ws.sent.map((b) => decode(b) as Record<string, unknown>).filter((c) => c.op === "publish");
    expect(sent[0]!.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(sent[0]!.data as Uint8Array)).toEqual(Array.from(payload));
    expect(sent[1]!.data).toBe('{"text":"hé"}');

    expect(got).toHaveLength(2);
    expect(got[0]).toBeInstanceOf(Uint8Array);
    expect(Array.from(got[0] as Uint8Array)).toEqual(Array.from(payload));
    expect(got[1]).toEqual({ text: "hé" });
    client.close();
  });
});

describe("modules", () => {
  it("import no package statically: browsers load dist/ without a bundler", () => {
    for (const f of readdirSync(new URL("../src/", import.meta.url))) {
      const src = readFileSync(new URL(`../src/${f}`, import.meta.url), "utf8");
      for (const m of src.matchAll(/^import\s+(type\s+)?[^;]*?from\s+"([^"]+)"/gms)) {
        if (m[1] || m[2]!.startsWith(".") || m[2]!.startsWith("node:")) continue;
        throw new Error(`${f} imports ${m[2]} statically`);
      }
    }
  });
});
