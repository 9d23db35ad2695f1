// Tokens: a page whose token expires gets a new one through getToken() and
// carries on without losing a message (in-band refresh before expiry, and —
// with refresh turned off — the 4002 close, a new token and a resume); a page
// whose API key is revoked in the auth service stops reconnecting and says why.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startServer } from "../server.mjs";
import { checkExactlyOnceInOrder, connState, domMessages, launch, openChat } from "./browser.js";
import { Platform, waitFor } from "./platform.js";

let platform: Platform;
let browser: Browser;

beforeAll(async () => {
  platform = await Platform.create();
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await platform?.cleanup();
});

test("pages whose tokens expire get new ones from getToken() and lose no message", async () => {
  const gw = await platform.roomcastRun("gw-tokens");
  const server = await startServer({ url: gw.ws, key: platform.key, port: 0 });
  try {
    // 4 s tokens: refreshed in band 2 s before expiry…
    const dana = await openChat(browser, server.port, "dana", "&ttl=4");
    // …or not at all: the gateway closes with 4002 and the SDK reconnects with a new token.
    const erin = await openChat(browser, server.port, "erin", "&ttl=4&refresh=0");

    const ids: string[] = [];
    // Publish for three token lifetimes.
    const until = Date.now() + 12_000;
    while (Date.now() < until) {
      const id = `t-${ids.length + 1}`;
      ids.push(id);
      await platform.publish(gw.http, "chat.lobby", { text: `tick ${ids.length}`, id }, id);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const [name, page] of [["dana", dana], ["erin", erin]] as const) {
      await waitFor(`${name} shows all ${ids.length} messages`, 20000, async () => (await domMessages(page)).length >= ids.length);
      expect(checkExactlyOnceInOrder(await domMessages(page), ids), name).toBeNull();
      expect((await connState(page)).state, name).not.toBe("closed");
    }
    expect(server.stats.tokens.dana).toBeGreaterThanOrEqual(3);
    expect(server.stats.tokens.erin).toBeGreaterThanOrEqual(3);
    const danaRefreshes = await dana.evaluate(() => (window as any).chat.refreshes.length);
    expect(danaRefreshes).toBeGreaterThanOrEqual(2);
    const erinStates = await erin.evaluate(() => (window as any).chat.states as { state: string; code?: number; recovered?: boolean }[]);
    expect(erinStates.filter((s) => s.state === "reconnecting" && s.code === 4002).length).toBeGreaterThanOrEqual(2);
    expect(erinStates.filter((s) => s.state === "resumed").every((s) => s.recovered)).toBe(true);
  } finally {
    await server.close();
  }
});

test("a page whose key is revoked stops reconnecting and shows why", async () => {
  // roomcast run keeps its dev key in its auth service: revoke it there.
  const gw = await platform.roomcastRun("gw-revoke", { devKey: true });
  expect(gw.devKey).toMatch(/^dev\./);
  const server = await startServer({ url: gw.ws, key: gw.devKey, port: 0 });
  try {
    const frank = await openChat(browser, server.port, "frank");
    await platform.publish(gw.http, "chat.lobby", { text: "before the revocation", id: "r-1" }, "r-1", gw.devKey);
    await waitFor("frank sees the message", 10000, async () => (await domMessages(frank)).length === 1);

    const keyId = gw.devKey.split(":")[0]!.split(".")[1]!;
    await platform.cli(["keys", "revoke", "--app", "dev", keyId], { ROOMCAST_AUTH_URL: gw.authURL, ROOMCAST_ADMIN_TOKEN: gw.adminToken });
    const s = await waitFor("frank's page closed for good", 15000, async () => {
      const s = await connState(frank);
      return s.state === "closed" ? s : null;
    });
    expect(s.code).toBe("4003");
    expect(s.reason).toMatch(/forbidden \(4003\).*revoked/);
    const tokens = server.stats.tokens.frank;
    // Stopped means stopped: no reconnect attempt (each would fetch a token)
    // within several backoff windows.
    await new Promise((r) => setTimeout(r, 2000));
    expect(server.stats.tokens.frank).toBe(tokens);
    expect((await connState(frank)).state).toBe("closed");
  } finally {
    await server.close();
  }
});
