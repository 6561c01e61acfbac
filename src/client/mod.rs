//! What every gRPC client of verdict shares: the CLI's subcommands
//! (`cli/`) and the load generator (`bench/`) both open channels, name
//! status codes and print tables the same way, so that lives here, below
//! both, and neither of them imports the other.
//!
//! `connect.rs` opens a channel (eagerly, with a bounded wait), `code.rs`
//! names gRPC codes as grpcurl does, `table.rs` prints aligned tables,
//! `escape.rs` escapes what came from the server before it is printed.
//! Like its users, this module knows the server only through the wire.

mod code;
mod connect;
pub(crate) mod escape;
mod table;

pub(crate) use code::code_name;
pub(crate) use connect::{ClientTls, Target, connect};
pub(crate) use table::Table;
