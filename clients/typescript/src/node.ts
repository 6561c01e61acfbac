/**
 * Node entry point: a client over gRPC (HTTP/2) with
 * `@connectrpc/connect-node`.
 */
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VerdictClient, type ClientOptions } from "./client.js";

export * from "./index.js";

/** TLS options of a Node client (PEM strings or buffers). */
export interface TlsOptions {
  /** CA certificate(s) that sign the server's certificate (default: Node's roots). */
  ca?: string | Buffer;
  /** Client certificate presented to the server (mTLS); with `key`. */
  cert?: string | Buffer;
  /** Private key of `cert`. */
  key?: string | Buffer;
}

/** Options of a Node client: those of every client, and TLS. */
export interface NodeClientOptions extends ClientOptions {
  /** TLS towards an `https://` base URL (and mTLS with `cert` and `key`). */
  tls?: TlsOptions;
}

/**
 * A client for `baseUrl` (for example `http://127.0.0.1:50051`, or
 * `https://verdict.example.com:50443` with `tls`) over gRPC. HTTP/2
 * keepalive pings notice a dead connection under a quiet watch.
 */
export function connectNode(baseUrl: string, options: NodeClientOptions = {}): VerdictClient {
  const { tls, ...clientOptions } = options;
  if (tls && !baseUrl.startsWith("https://")) {
    throw new Error(`TLS options need an https:// base URL (got ${baseUrl})`);
  }
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error("tls.cert and tls.key go together");
  }
  const transport = createGrpcTransport({
    baseUrl,
    pingIntervalMs: 30_000,
    pingTimeoutMs: 10_000,
    ...(tls ? { nodeOptions: { ca: tls.ca, cert: tls.cert, key: tls.key } } : {}),
  });
  return new VerdictClient(transport, clientOptions);
}
