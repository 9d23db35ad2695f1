// The gateway serving a page is killed (SIGKILL): the page reconnects
// through the load balancer to the other node, resumes its session and shows
// every message sent meanwhile, in order, exactly once.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startServer } from "../server.mjs";
import { checkExactlyOnceInOrder, connState, domMessages, launch, openChat } from "./browser.js";
import { Platform, waitFor, type Proc } from "./platform.js";

let platform: Platform;
let browser: Browser;
let server: Awaited<ReturnType<typeof startServer>>;
const nodes: Record<string, { proc: Proc; ws: string; http: string }> = {};

beforeAll(async () => {
  platform = await Platform.create();
  nodes["gw-a"] = await platform.roomcastRun("gw-a");
  nodes["gw-b"] = await platform.roomcastRun("gw-b");
  const lb = await platform.proxy([nodes["gw-a"].ws, nodes["gw-b"].ws]);
  server = await startServer({ url: lb, key: platform.key, port: 0 });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await platform?.cleanup();
});

test("page reconnects to another node after its gateway is killed and shows every message once, in order", async () => {
  const page = await openChat(browser, server.port, "carol");
  const serving = (await connState(page)).node.replace(/^·\s*/, "");
  expect(Object.keys(nodes)).toContain(serving);
  const survivor = Object.keys(nodes).find((n) => n !== serving)!;
  const room = "chat.lobby";
  const ids: string[] = [];
  const send = async (n: number, tag: string) => {
    for (let i = 0; i < n; i++) {
      const id = `${tag}-${ids.length + 1}`;
      ids.push(id);
      await platform.publish(nodes[survivor]!.http, room, { text: `message ${ids.length} (${tag})`, id }, id);
    }
  };

  await send(5, "before");
  await waitFor("the first 5 messages on the page", 10000, async () => (await domMessages(page)).length === 5);

  await nodes[serving]!.proc.kill("SIGKILL");
  // Sent while the page is cut off (it notices at once: the socket closes).
  await send(20, "meanwhile");
  await waitFor(`page back on ${survivor}`, 20000, async () => {
    const s = await connState(page);
    return s.state === "resumed" && s.node.includes(survivor);
  });
  await send(5, "after");

  await waitFor("all 30 messages on the page", 20000, async () => (await domMessages(page)).length >= ids.length);
  const shown = await domMessages(page);
  expect(checkExactlyOnceInOrder(shown, ids)).toBeNull();
  expect(shown[0]!.offset).toBe(1);

  const states = await page.evaluate(() => (window as any).chat.states as { state: string; recovered?: boolean; node?: string }[]);
  const resumed = states.filter((s) => s.state === "resumed");
  expect(states.some((s) => s.state === "reconnecting")).toBe(true);
  expect(resumed.at(-1)).toMatchObject({ recovered: true, node: survivor });
});
