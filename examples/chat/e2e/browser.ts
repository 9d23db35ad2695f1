import { chromium, type Browser, type Page } from "playwright-core";
import { waitFor } from "./platform.js";

/** Debian's Chromium (the chromium package); override with CHROMIUM_PATH. No browser downloads. */
export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

export interface DomMessage {
  offset: number;
  epoch: string;
  id: string;
  from: string;
  text: string;
}

/** Opens the chat page as user and waits until it joined its rooms. */
export async function openChat(browser: Browser, port: number, user: string, query = ""): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 960, height: 600 } });
  page.on("pageerror", (err) => console.error(`[${user}] page error:`, err));
  await page.goto(`http://127.0.0.1:${port}/?user=${user}${query}`);
  await waitFor(`${user}: page ready`, 20000, async () => {
    const s = await page.evaluate(() => ({ ready: (window as any).chat?.ready, error: (window as any).chat?.error }));
    if (s.error) throw new Error(s.error);
    return s.ready;
  });
  return page;
}

/** The messages the page shows, as rendered in the DOM. */
export function domMessages(page: Page): Promise<DomMessage[]> {
  return page.$$eval("#messages li.msg", (lis) =>
    lis.map((li) => {
      const el = li as HTMLElement;
      return {
        offset: Number(el.dataset.offset),
        epoch: el.dataset.epoch ?? "",
        id: el.dataset.id ?? "",
        from: el.dataset.from ?? "",
        text: el.querySelector(".text")?.textContent ?? "",
      };
    }),
  );
}

export function domMembers(page: Page): Promise<string[]> {
  return page.$$eval("#members li", (lis) => lis.map((li) => (li as HTMLElement).dataset.client ?? ""));
}

export async function connState(page: Page): Promise<{ state: string; code: string; node: string; reason: string }> {
  return page.evaluate(() => {
    const c = document.getElementById("conn")!;
    return {
      state: c.dataset.state ?? "",
      code: c.dataset.code ?? "",
      node: document.getElementById("node")!.textContent ?? "",
      reason: document.getElementById("reason")!.hidden ? "" : (document.getElementById("reason")!.textContent ?? ""),
    };
  });
}

/** Types into the composer and sends. */
export async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send");
}

/**
 * Checks that the page shows exactly `ids`, in order, once each, with
 * consecutive offsets of one epoch.
 */
export function checkExactlyOnceInOrder(shown: DomMessage[], ids: string[]): string | null {
  const got = shown.map((m) => m.id);
  if (JSON.stringify(got) !== JSON.stringify(ids)) return `ids differ:\n got  ${got.join(",")}\n want ${ids.join(",")}`;
  for (let i = 1; i < shown.length; i++) {
    if (shown[i]!.epoch !== shown[0]!.epoch) return `epoch changed at ${i}`;
    if (shown[i]!.offset !== shown[i - 1]!.offset + 1) return `offsets not consecutive at ${i}: ${shown[i - 1]!.offset} then ${shown[i]!.offset}`;
  }
  return null;
}
