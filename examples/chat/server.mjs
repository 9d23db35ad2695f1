// Dev server for the chat example: serves the page, the SDK build and a
// token endpoint that mints short-lived HS256 JWTs with an API key — what
// your own backend does in production (never ship the key to the browser).
//
//   ROOMCAST_URL=ws://localhost:8080/v1/connect ROOMCAST_KEY='dev.dev:…' node server.mjs
//
// Without ROOMCAST_KEY it reads the key `roomcast run` keeps in
// ROOMCAST_DEV_KEY_FILE (default ~/.config/roomcast/dev-key).
import { createHmac, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { homedir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sdkDir = join(here, "node_modules", "@roomcast", "client", "dist");
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".map": "application/json", ".png": "image/png" };

/** Parses "<app>.<keyId>:<secret>". */
export function parseKey(s) {
  const m = /^([^.:\s]+)\.([^.:\s]+):(\S+)$/.exec(s.trim());
  if (!m) throw new Error("API key must look like <app>.<keyId>:<secret>");
  return { app: m[1], id: m[2], secret: m[3] };
}

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** Mints an HS256 token (docs/protocol.md "Tokens"): header kid = key id; claims app, sub, iat, exp, caps. */
export function mintToken(key, sub, caps, ttlSeconds, now = Date.now()) {
  const iat = Math.floor(now / 1000);
  const head = b64url({ alg: "HS256", typ: "JWT", kid: key.id });
  const body = b64url({ app: key.app, sub, iat, exp: iat + ttlSeconds, jti: randomBytes(8).toString("hex"), caps });
  const sig = createHmac("sha256", key.secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/**
 * Starts the dev server. Options: url (gateway WebSocket URL the page
 * connects to), key (API key string), rooms, port (0: any), caps.
 * Resolves with { port, close(), stats } — stats.tokens counts minted tokens per user.
 */
export function startServer({ url, key, rooms = ["chat.lobby", "chat.random", "chat.dev"], port = 5173, host = "127.0.0.1", caps = { "chat.*": ["join", "publish", "presence"] } }) {
  const k = parseKey(key);
  const stats = { tokens: {} };
  const server = createServer(async (req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    try {
      if (u.pathname === "/config") return json(res, 200, { url, rooms });
      if (u.pathname === "/token") {
        const user = u.searchParams.get("user") ?? "";
        if (!/^[\w.-]{1,64}$/.test(user)) return json(res, 400, { error: "user must be 1-64 letters, digits, '.', '_' or '-'" });
        // A real backend decides the lifetime; the example lets the page ask, within bounds.
        const ttl = Math.min(Math.max(Number(u.searchParams.get("ttl") ?? 3600) || 3600, 2), 24 * 3600);
        stats.tokens[user] = (stats.tokens[user] ?? 0) + 1;
        return json(res, 200, { token: mintToken(k, user, caps, ttl) });
      }
      let file;
      if (u.pathname.startsWith("/sdk/")) file = join(sdkDir, normalize(u.pathname.slice(5)).replace(/^(\.\.[/\\])+/, ""));
      else file = join(here, "public", u.pathname === "/" ? "index.html" : normalize(u.pathname).replace(/^(\.\.[/\\])+/, ""));
      const body = await readFile(file);
      res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      json(res, 404, { error: "not found" });
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      resolve({
        port: server.address().port,
        stats,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

function json(res, status, v) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(v));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const keyFile = process.env.ROOMCAST_DEV_KEY_FILE ?? join(homedir(), ".config", "roomcast", "dev-key");
  const key = process.env.ROOMCAST_KEY ?? readFileSync(keyFile, "utf8").trim();
  const url = process.env.ROOMCAST_URL ?? "ws://localhost:8080/v1/connect";
  const { port } = await startServer({ url, key, port: Number(process.env.PORT ?? 5173) });
  console.log(`chat example: http://localhost:${port}/?user=alice  (gateway ${url})`);
}
