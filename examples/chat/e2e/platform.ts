// Test platform: real Roomcast processes on this machine's Redis, RabbitMQ
// and PostgreSQL, isolated like the Go e2e tests (pkg/testenv): a fresh
// RabbitMQ vhost, a Redis key prefix, a PostgreSQL database — all deleted
// afterwards — and every child process killed at the end.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const repoRoot = new URL("../../../", import.meta.url).pathname;
const redisURL = process.env.ROOMCAST_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
const amqpBase = process.env.ROOMCAST_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/";
const pgAdmin = process.env.ROOMCAST_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

export const hex = (n: number) => randomBytes(n).toString("hex");

/** Directory holding the roomcast and auth binaries (global setup builds them). */
export function binDir(): string {
  const d = process.env.ROOMCAST_BIN_DIR;
  if (!d) throw new Error("ROOMCAST_BIN_DIR is not set (e2e/setup.ts sets it)");
  return d;
}

/** Polls cond every 25 ms until it holds or the deadline passes (then throws msg). */
export async function waitFor<T>(msg: string, timeoutMs: number, cond: () => T | Promise<T>): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${msg}${last ? ` (last error: ${last})` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export class Proc {
  logs = "";
  exited = false;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on("data", (b) => (this.logs += b));
    child.stderr?.on("data", (b) => (this.logs += b));
    child.on("exit", () => (this.exited = true));
  }
  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once("exit", () => resolve());
      this.child.kill(signal);
    });
  }
}

/** A platform slice: vhost, Redis prefix, static API key, processes. */
export class Platform {
  readonly prefix = `rctest:js${hex(6)}:`;
  readonly vhost = `rc-test-js-${hex(6)}`;
  readonly key = `app1.k1:secret-${hex(12)}`;
  readonly procs: Proc[] = [];
  private databases: string[] = [];
  private servers: Server[] = [];
  private dirs: string[] = [];

  static async create(): Promise<Platform> {
    const p = new Platform();
    await run("rabbitmqctl", ["-q", "add_vhost", p.vhost]);
    const user = new URL(amqpBase).username || "guest";
    await run("rabbitmqctl", ["-q", "set_permissions", "-p", p.vhost, user, ".*", ".*", ".*"]);
    return p;
  }

  get amqpURL(): string {
    const u = new URL(amqpBase);
    u.pathname = "/" + encodeURIComponent(this.vhost);
    return u.toString();
  }

  baseEnv(): Record<string, string> {
    return {
      ROOMCAST_AMQP_URL: this.amqpURL,
      ROOMCAST_REDIS_URL: redisURL,
      ROOMCAST_REDIS_PREFIX: this.prefix,
      ROOMCAST_LOG_FORMAT: "json",
      ROOMCAST_LOG_LEVEL: "info",
    };
  }

  private start(name: string, bin: string, args: string[], env: Record<string, string>): Proc {
    const child = spawn(`${binDir()}/${bin}`, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const p = new Proc(name, child);
    this.procs.push(p);
    return p;
  }

  /** Creates a PostgreSQL database that cleanup drops; returns its URL. */
  async database(): Promise<string> {
    const db = `rctest_js_${hex(6)}`;
    await run("psql", [pgAdmin, "-q", "-c", `CREATE DATABASE ${db}`]);
    this.databases.push(db);
    const u = new URL(pgAdmin);
    u.pathname = "/" + db;
    return u.toString();
  }

  /**
   * Starts `roomcast run` (auth + presence + gateway in one process) as node
   * `node`, with its own auth database, and resolves with its URLs. With
   * devKey the static key is left out and `roomcast run` creates the dev app
   * and key in its auth service (so the key can be revoked there).
   */
  async roomcastRun(
    node: string,
    opts: { devKey?: boolean; env?: Record<string, string> } = {},
  ): Promise<{ proc: Proc; ws: string; http: string; authURL: string; adminToken: string; devKey: string }> {
    const dir = mkdtempSync(join(tmpdir(), "roomcast-js-e2e-"));
    this.dirs.push(dir);
    const proc = this.start(node, "roomcast", ["run"], {
      ...this.baseEnv(),
      ROOMCAST_KEYS: opts.devKey ? "" : this.key,
      ROOMCAST_NODE_ID: node,
      ROOMCAST_DEV_KEY_FILE: join(dir, "dev-key"),
      GATEWAY_ADDR: "127.0.0.1:0",
      GATEWAY_IP_RATE: "100000",
      GATEWAY_IP_BURST: "100000",
      AUTH_ADDR: "127.0.0.1:0",
      AUTH_DATABASE_URL: await this.database(),
      // roomcast run also hosts history, webhooks and metrics: their own
      // databases and ports, so several nodes can run side by side.
      HISTORY_DATABASE_URL: await this.database(),
      WEBHOOKS_DATABASE_URL: await this.database(),
      WEBHOOKS_ADDR: "127.0.0.1:0",
      METRICS_DATABASE_URL: await this.database(),
      METRICS_ADDR: "127.0.0.1:0",
      ...opts.env,
    });
    const banner = await waitFor(`${node}: roomcast run banner`, 30000, () => {
      if (proc.exited) throw new Error(`roomcast run exited:\n${proc.logs.slice(-3000)}`);
      const ws = /WebSocket:\s+(\S+)/.exec(proc.logs)?.[1];
      return ws ? { ws } : undefined;
    });
    const ws = banner.ws;
    return {
      proc,
      ws,
      http: ws.replace(/^ws:/, "http:").replace(/\/v1\/connect$/, ""),
      authURL: /Auth:\s+(\S+)/.exec(proc.logs)?.[1] ?? "",
      adminToken: /admin credential:\s+([^\s)]+)/.exec(proc.logs)?.[1] ?? "",
      devKey: /Dev key:\s+(\S+)/.exec(proc.logs)?.[1] ?? "",
    };
  }

  /** Runs the roomcast CLI; resolves with its stdout. */
  async cli(args: string[], env: Record<string, string>): Promise<string> {
    const { stdout } = await run(`${binDir()}/roomcast`, args, { env: { ...process.env, ...env } });
    return stdout;
  }

  /**
   * A TCP round-robin proxy in front of several gateways — the load
   * balancer a page reconnects through. A backend that refuses is skipped.
   */
  async proxy(backends: string[]): Promise<string> {
    let next = 0;
    const addrs = backends.map((b) => new URL(b.replace(/^ws/, "http")));
    const server = createServer((client: Socket) => {
      client.pause();
      const tryBackend = (left: number) => {
        if (left === 0) return client.destroy();
        const a = addrs[next++ % addrs.length]!;
        const up = createConnection({ host: a.hostname, port: Number(a.port) });
        up.once("error", () => {
          up.destroy();
          tryBackend(left - 1);
        });
        up.once("connect", () => {
          up.removeAllListeners("error");
          up.on("error", () => client.destroy());
          client.on("error", () => up.destroy());
          up.on("close", () => client.destroy());
          client.on("close", () => up.destroy());
          client.pipe(up);
          up.pipe(client);
          client.resume();
        });
      };
      tryBackend(addrs.length);
    });
    this.servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    return `ws://127.0.0.1:${port}/v1/connect`;
  }

  /** REST publish with the platform's static key. */
  async publish(httpBase: string, room: string, data: unknown, idempotencyKey?: string, key = this.key): Promise<{ offset: number; epoch: string }> {
    const res = await fetch(`${httpBase}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ room, event: "msg", data, idempotency_key: idempotencyKey }),
    });
    const body = await res.text();
    if (!res.ok) throw new Error(`REST publish: ${res.status} ${body}`);
    return JSON.parse(body);
  }

  /** Kills every process and deletes the vhost, the Redis keys and the databases. */
  async cleanup(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.kill()));
    for (const s of this.servers) s.close();
    const trimmed = this.prefix.replace(/:$/, "");
    const redis = new URL(redisURL);
    const rc = ["-h", redis.hostname || "127.0.0.1", "-p", redis.port || "6379", "-n", redis.pathname.replace("/", "") || "0"];
    for (const pattern of [`${this.prefix}*`, `asynq:{${trimmed}:*`]) {
      const { stdout } = await run("redis-cli", [...rc, "--scan", "--pattern", pattern], { maxBuffer: 64 << 20 });
      const keys = stdout.split("\n").filter(Boolean);
      for (let i = 0; i < keys.length; i += 500) await run("redis-cli", [...rc, "unlink", ...keys.slice(i, i + 500)]);
    }
    const { stdout: queues } = await run("redis-cli", [...rc, "smembers", "asynq:queues"]);
    const mine = queues.split("\n").filter((q) => q.startsWith(trimmed + ":"));
    if (mine.length) await run("redis-cli", [...rc, "srem", "asynq:queues", ...mine]);
    await run("rabbitmqctl", ["-q", "delete_vhost", this.vhost]).catch(() => {});
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    for (const db of this.databases) await run("psql", [pgAdmin, "-q", "-c", `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]).catch(() => {});
  }

  logs(): string {
    return this.procs.map((p) => `--- ${p.name}\n${p.logs.slice(-4000)}`).join("\n");
  }
}
