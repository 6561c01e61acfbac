/**
 * Test fixtures: the real `verdict serve` binary on a free port, with the
 * in-memory store (`--dev`) or a private `redis-server` (own port, temp
 * dir, persisting nothing). The binary is `$VERDICT_BIN` or
 * `target/debug/verdict` (scripts/test.sh builds it).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectNode } from "../src/node.js";
import { connectWeb } from "../src/web.js";
import { Code, type ClientOptions, type VerdictClient } from "../src/index.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const BIN = process.env.VERDICT_BIN ?? join(ROOT, "target", "debug", "verdict");
const START_TIMEOUT_MS = 30_000;

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once("exit", () => r()));
}

async function redisPing(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(1000);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (d) => {
      socket.destroy();
      ok(d.toString().startsWith("+PONG"));
    });
    socket.once("error", () => ok(false));
    socket.once("timeout", () => {
      socket.destroy();
      ok(false);
    });
  });
}

export type Store = "memory" | "redis";
export type Protocol = "grpc" | "grpc-web";

/** A running `verdict serve` (and its Redis); `stop()` ends both. */
export class Server {
  readonly dir = mkdtempSync(join(tmpdir(), "verdict-ts-"));
  port = 0;
  private redis?: ChildProcess;
  private redisPort = 0;
  private proc?: ChildProcess;
  private starts = 0;

  constructor(readonly store: Store) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A client of this server over `protocol`. */
  client(protocol: Protocol, options: ClientOptions = { timeoutMs: 30_000 }): VerdictClient {
    return protocol === "grpc" ? connectNode(this.baseUrl, options) : connectWeb(this.baseUrl, options);
  }

  static async start(store: Store): Promise<Server> {
    const server = new Server(store);
    try {
      if (store === "redis") {
        await server.startRedis();
      }
      server.port = await freePort();
      await server.startVerdict();
      return server;
    } catch (e) {
      await server.stop();
      throw e;
    }
  }

  private async startRedis(): Promise<void> {
    this.redisPort = await freePort();
    const log = openSync(join(this.dir, "redis.log"), "w");
    this.redis = spawn(
      "redis-server",
      ["--port", String(this.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", this.dir, "--protected-mode", "no"],
      { stdio: ["ignore", log, log] },
    );
    const until = Date.now() + START_TIMEOUT_MS;
    while (!(await redisPing(this.redisPort))) {
      if (Date.now() > until || this.redis.exitCode !== null) {
        throw new Error(`redis-server did not start: ${readFileSync(join(this.dir, "redis.log"), "utf8")}`);
      }
      await delay(50);
    }
  }

  /** Starts (or restarts) `verdict serve` on `this.port`; resolves once it answers. */
  async startVerdict(): Promise<void> {
    const args = ["serve", "--listen", `127.0.0.1:${this.port}`, "--shutdown-grace", "2s"];
    args.push(...(this.redis ? ["--redis-url", `redis://127.0.0.1:${this.redisPort}/`] : ["--dev"]));
    const logPath = join(this.dir, `verdict-${this.starts++}.log`);
    const log = openSync(logPath, "w");
    this.proc = spawn(BIN, args, { stdio: ["ignore", log, log] });
    const until = Date.now() + START_TIMEOUT_MS;
    const probe = connectNode(this.baseUrl, { timeoutMs: 1000 });
    for (;;) {
      if (this.proc.exitCode !== null) {
        throw new Error(`verdict serve exited: ${readFileSync(logPath, "utf8")}`);
      }
      try {
        await probe.listIncidents({ pageSize: 1 });
        return;
      } catch (e) {
        if (Date.now() > until) {
          throw new Error(`verdict serve not ready (${String(e)}): ${readFileSync(logPath, "utf8")}`);
        }
        await delay(50);
      }
    }
  }

  /** SIGTERM: graceful shutdown; resolves once the process has exited. */
  async terminate(): Promise<void> {
    if (this.proc) {
      this.proc.kill("SIGTERM");
      await exited(this.proc);
    }
  }

  async stop(): Promise<void> {
    for (const child of [this.proc, this.redis]) {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited(child);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Why watch tests must skip, or undefined when the server serves `rpc`:
 * UNIMPLEMENTED means the live-decisions work has not landed. Any other
 * answer (NOT_FOUND for the probe's unknown token, or a stream still open
 * at the probe's deadline) means it is served.
 */
export async function watchUnimplemented(
  client: VerdictClient,
  rpc: "watchDecision" | "watchDecisions",
): Promise<string | undefined> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 1000);
  const stream =
    rpc === "watchDecision"
      ? client.watchDecision("DEC-000000000000", { maxRetries: 0, signal: abort.signal })
      : client.watchDecisions({ incidentId: "INC-PROBE", maxRetries: 0, signal: abort.signal });
  try {
    for await (const _ of stream) {
      break;
    }
  } catch (e) {
    if ((e as { code?: Code }).code === Code.Unimplemented) {
      return `the server answers UNIMPLEMENTED for ${rpc} (live decisions not landed yet): ${(e as Error).message}`;
    }
  } finally {
    clearTimeout(timer);
  }
  return undefined;
}

let counter = 0;
/** An id no other test uses. */
export function uniqueId(prefix = "INC-TS"): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Date.now().toString(36)}`.toUpperCase();
}
