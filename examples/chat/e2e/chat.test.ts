// Two pages in one room exchange messages and see each other in presence;
// the run also takes docs/chat-example.png.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startServer } from "../server.mjs";
import { domMembers, domMessages, launch, openChat, say } from "./browser.js";
import { Platform, repoRoot, waitFor } from "./platform.js";

let platform: Platform;
let browser: Browser;
let server: Awaited<ReturnType<typeof startServer>>;

beforeAll(async () => {
  platform = await Platform.create();
  const gw = await platform.roomcastRun("gw-chat");
  server = await startServer({ url: gw.ws, key: platform.key, port: 0 });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await platform?.cleanup();
});

test("two pages in one room exchange messages and see each other in presence", async () => {
  const alice = await openChat(browser, server.port, "alice");
  const bob = await openChat(browser, server.port, "bob");

  for (const page of [alice, bob]) {
    await waitFor("both members listed on each page", 10000, async () => JSON.stringify(await domMembers(page)) === '["alice","bob"]');
  }

  await say(alice, "Hi Bob! Roomcast works in the browser.");
  await waitFor("bob sees alice's message", 10000, async () => (await domMessages(bob)).length === 1);
  await say(bob, "Hi Alice — I see you in presence, too.");
  await say(alice, "Messages arrive in order, once, with their offsets.");
  for (const page of [alice, bob]) {
    await waitFor("three messages on each page", 10000, async () => (await domMessages(page)).length === 3);
  }
  const a = await domMessages(alice);
  const b = await domMessages(bob);
  expect(b).toEqual(a);
  expect(a.map((m) => m.from)).toEqual(["alice", "bob", "alice"]);
  expect(a.map((m) => m.offset)).toEqual([a[0]!.offset, a[0]!.offset + 1, a[0]!.offset + 2]);
  expect(a[1]!.text).toBe("Hi Alice — I see you in presence, too.");

  await alice.screenshot({ path: `${repoRoot}docs/chat-example.png` });

  // Bob leaves: alice sees him go.
  await bob.close({ runBeforeUnload: true });
  await waitFor("bob left alice's presence list", 20000, async () => JSON.stringify(await domMembers(alice)) === '["alice"]');
});
