/**
 * A stub DecisionService served by connect-node over gRPC (HTTP/2) and
 * gRPC-Web (HTTP/1.1), whose watch streams drop mid-way: for the client's
 * resume logic, independent of the real server.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import { DecisionSchema, DecisionService, DecisionState, type Decision } from "../src/index.js";

export const TOKEN = "DEC-00000000000A";
const { READY, EXECUTING, COMPLETED } = DecisionState;

export function decision(version: number, state: DecisionState, token = TOKEN): Decision {
  return create(DecisionSchema, { token, incidentId: "INC-1", version: BigInt(version), state });
}

/** How the first stream of a watch ends after its messages. */
export type Drop = "unavailable" | "socket";

export class FakeServer {
  /** `afterVersion` of every WatchDecision call, in order. */
  readonly afterVersions: bigint[] = [];
  watchAllCalls = 0;
  private sockets = new Set<Socket>();
  private constructor(
    private readonly server: http.Server | http2.Http2Server,
    readonly baseUrl: string,
  ) {}

  static async start(protocol: "grpc" | "grpc-web", drop: Drop): Promise<FakeServer> {
    let fake: FakeServer | undefined;
    const routes = (router: ConnectRouter) =>
      router.service(DecisionService, {
        async *watchDecision(req) {
          if (req.token !== TOKEN) {
            throw new ConnectError("no such token", Code.NotFound);
          }
          fake!.afterVersions.push(req.afterVersion);
          const attempt = fake!.afterVersions.length;
          const history = [decision(1, READY), decision(2, READY), decision(3, EXECUTING), decision(4, COMPLETED)];
          if (attempt === 1) {
            yield { decision: history[0] };
            yield { decision: history[1] };
            await fake!.drop(drop);
          } else if (attempt === 2) {
            throw new ConnectError("connection refused", Code.Unavailable);
          } else {
            // One duplicate, which the client must skip.
            for (const d of history.slice(Math.max(Number(req.afterVersion) - 1, 0))) {
              yield { decision: d };
            }
          }
        },
        async *watchDecisions() {
          fake!.watchAllCalls += 1;
          if (fake!.watchAllCalls === 1) {
            yield { decision: decision(1, READY, "DEC-00000000000A") };
            yield { decision: decision(1, READY, "DEC-00000000000B") };
            await fake!.drop(drop);
          }
          yield { decision: decision(1, READY, "DEC-00000000000A") };
          yield { decision: decision(2, EXECUTING, "DEC-00000000000A") };
        },
      });
    const handler = connectNodeAdapter({ routes, grpc: true, grpcWeb: true, connect: false });
    const server = protocol === "grpc" ? http2.createServer(handler) : http.createServer(handler);
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const port = (server.address() as { port: number }).port;
    fake = new FakeServer(server, `http://127.0.0.1:${port}`);
    server.on("connection", (s: Socket) => {
      fake!.sockets.add(s);
      s.on("close", () => fake!.sockets.delete(s));
    });
    return fake;
  }

  private async drop(how: Drop): Promise<never> {
    if (how === "socket") {
      // Give the messages time to leave, then cut every connection.
      await new Promise((r) => setTimeout(r, 50));
      for (const s of this.sockets) {
        s.destroy();
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new ConnectError("server is shutting down", Code.Unavailable);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) {
      s.destroy();
    }
    await new Promise((ok) => this.server.close(() => ok(undefined)));
  }
}
