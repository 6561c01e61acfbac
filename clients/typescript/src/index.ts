/**
 * Typed client for verdict, the incident-remediation decision service.
 * Transport-neutral: `@verdict/client/node` (gRPC) and `@verdict/client/web`
 * (gRPC-Web) add `connectNode` and `connectWeb`; `new VerdictClient(transport)`
 * takes any Connect transport.
 */
export * from "./client.js";
export * from "./errors.js";
export * from "./gen/verdict/v1/incident_pb.js";
export * from "./gen/verdict/v1/decision_pb.js";
export * from "./gen/verdict/v1/stats_pb.js";
export * from "./gen/verdict/v1/audit_pb.js";
export * from "./gen/verdict/v1/identity_pb.js";
