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
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out.join("verdict_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
