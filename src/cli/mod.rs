//! The client subcommands (filled in below).
