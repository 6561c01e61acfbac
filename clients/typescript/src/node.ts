/**
 * Node entry point: a client over gRPC (HTTP/2) with
 * `@connectrpc/connect-node`.
 */
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VerdictClient, type ClientOptions } from "./client.js";

export * from "./index.js";

/**
 * A client for `baseUrl` (for example `http://127.0.0.1:50051`) over gRPC.
 * HTTP/2 keepalive pings notice a dead connection under a quiet watch.
 */
export function connectNode(baseUrl: string, options: ClientOptions = {}): VerdictClient {
  const transport = createGrpcTransport({
    baseUrl,
    pingIntervalMs: 30_000,
    pingTimeoutMs: 10_000,
  });
  return new VerdictClient(transport, options);
}
