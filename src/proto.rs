//! Code generated from `proto/` by `build.rs` (never edited by hand).

#[allow(clippy::all, missing_docs)]
pub mod verdict {
    pub mod v1 {
        tonic::include_proto!("verdict.v1");
    }
}

pub use verdict::v1::*;

/// The encoded descriptor set of every verdict proto file and its imports,
/// for server reflection and the CLI's JSON output.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/verdict_descriptor.bin"));

/// `google/rpc/error_details.proto`, registered with reflection so tools
/// such as grpcurl can decode the `BadRequest` details of errors.
pub const RPC_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rpc_descriptor.bin"));
