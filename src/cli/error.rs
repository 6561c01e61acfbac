//! Failures of a `verdict` command become one message on stderr and an exit
//! code: 2 for an error the server answered (a gRPC status), 1 for anything
//! else (bad flags are clap's own 2; connection and config errors are 1).

use crate::client::code_name;
use std::process::ExitCode;
use tonic_types::StatusExt;

/// Exit code of an error the server answered with.
const EXIT_GRPC: u8 = 2;
/// Exit code of every other error.
const EXIT_OTHER: u8 = 1;

/// Prints `err` on stderr and returns the exit code for it.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let (text, code) = render(err);
    eprint!("{text}");
    ExitCode::from(code)
}

/// The message and exit code for `err`. The message and violations come
/// from the server (or name what it sent): escaped, never printed raw.
fn render(err: &anyhow::Error) -> (String, u8) {
    use crate::client::escape::{Style, escape};
    let (text, code) = match err.downcast_ref::<tonic::Status>() {
        Some(status) => (render_status(status), EXIT_GRPC),
        // `{:#}` joins the context chain on one line: "a: b: c".
        None => (format!("error: {err:#}\n"), EXIT_OTHER),
    };
    (escape(&text, Style::Terminal).into_owned(), code)
}

/// `error: CODE: message`, then one line per field violation
/// (google.rpc.BadRequest) when the server attached any.
fn render_status(status: &tonic::Status) -> String {
    let mut out = format!(
        "error: {}: {}\n",
        code_name(status.code()),
        status.message()
    );
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            out.push_str(&format!("  - {}: {}\n", v.field, v.description));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::ErrorDetails;

    #[test]
    fn grpc_errors_list_field_violations_and_exit_2() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation(
            "incident.affected_services[0]",
            "must be an RFC 1123 label",
        );
        let status =
            tonic::Status::with_error_details(Code::InvalidArgument, "invalid request", details);
        let (text, code) = render(&anyhow::Error::from(status));
        assert_eq!(code, EXIT_GRPC);
        assert_eq!(
            text,
            "error: INVALID_ARGUMENT: invalid request\n  - incident.affected_services[0]: must be an RFC 1123 label\n"
        );
    }

    #[test]
    fn server_text_in_errors_is_escaped() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("actor", "bad \u{202E}txt");
        let status = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "approved by \x1b[32mroot\r",
            details,
        );
        let (text, _) = render(&anyhow::Error::from(status));
        assert_eq!(
            text,
            "error: FAILED_PRECONDITION: approved by \\u{1b}[32mroot\\u{d}\n  - actor: bad \\u{202e}txt\n"
        );
    }

    #[test]
    fn other_errors_exit_1_on_one_line() {
        let err = anyhow::anyhow!("refused").context("cannot connect");
        assert_eq!(
            render(&err),
            ("error: cannot connect: refused\n".into(), EXIT_OTHER)
        );
    }
}
