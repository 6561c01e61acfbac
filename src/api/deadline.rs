//! Reads the caller's gRPC deadline (`grpc-timeout` header), so a
//! `GetOrCreateDecision(wait)` answers before the caller gives up.

use std::time::Duration;
use tokio::time::Instant;

/// Margin kept between our answer and the caller's deadline, for the
/// response to travel back.
const MARGIN: Duration = Duration::from_millis(10);

/// Parses `grpc-timeout` (an integer of at most 8 digits and a unit: H, M,
/// S, m, u, n) into the instant to answer by.
pub fn from_metadata(md: &tonic::metadata::MetadataMap) -> Option<Instant> {
    let raw = md.get("grpc-timeout")?.to_str().ok()?;
    let d = parse(raw)?;
    Some(Instant::now() + d.saturating_sub(MARGIN))
}

fn parse(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (num, unit) = raw.split_at(raw.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "S", "5", "5x", "123456789S", "-1S"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
