//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system
//! `protoc` is needed) and generates the tonic server and client code. The
//! encoded descriptor set is written beside it for server reflection and for
//! the CLI's JSON output.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "verdict/v1/incident.proto",
    "verdict/v1/decision.proto",
    "verdict/v1/stats.proto",
    "verdict/v1/audit.proto",
    "verdict/v1/identity.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=proto-vendor");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out.join("verdict_descriptor.bin"), fds.encode_to_vec())?;
    // google.rpc error details, served by reflection only (tonic-types has
    // the Rust types), so grpcurl can show field violations.
    let rpc = protox::compile(["google/rpc/error_details.proto"], ["proto-vendor"])?;
    std::fs::write(out.join("rpc_descriptor.bin"), rpc.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
