/**
 * Browser entry point: a client over gRPC-Web (HTTP/1.1 fetch) with
 * `@connectrpc/connect-web`. verdict serves gRPC-Web on its gRPC port.
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { VerdictClient, type ClientOptions } from "./client.js";

export * from "./index.js";

/** A client for `baseUrl` (for example `http://127.0.0.1:50051`) over gRPC-Web. */
export function connectWeb(baseUrl: string, options: ClientOptions = {}): VerdictClient {
  return new VerdictClient(createGrpcWebTransport({ baseUrl }), options);
}
