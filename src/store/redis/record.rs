//! The stored form of incident and decision records: the `d` field of their
//! hashes, every `h<N>` history field and the change stream's entries.
//!
//! Decoding the stored JSON was the largest cost of `GetDecision` after the
//! HTTP/2 stack (BENCHMARKS.md, "What holds get-decision back"): a third of
//! it was parsing RFC 3339 timestamps. Records are now written as protobuf
//! messages (prost) with a leading format byte:
//!
//! | first byte | format |
//! |---|---|
//! | `0x01` | [`PROST_V1`]: the messages in `record/pb.rs`, times as integers |
//! | `{` | JSON, as every release before this one wrote (read, never written) |
//! | anything else | refused as a corrupt record |
//!
//! A record written by an older release is read as it is and rewritten in
//! the new format on its next change: nothing migrates in bulk. The Lua
//! scripts never look inside `d`, so they are unchanged.
//!
//! The messages are the store's own, not the public API's (`proto/verdict/v1`):
//! the API evolves by its own rules (buf breaking), and the stored form may
//! change with a new format byte. A new field in a domain record is a
//! compile error in `record/pb.rs` (the conversions destructure every
//! record), so it cannot be silently dropped on the way to Redis.

mod pb;

use super::super::StoreError;
use serde::de::DeserializeOwned;

/// The format byte of a prost-encoded record, version 1.
pub(crate) const PROST_V1: u8 = 0x01;

/// A domain record with a stored form: encoded as [`PROST_V1`], decoded from
/// it or from the JSON of earlier releases.
pub(crate) trait Record: DeserializeOwned {
    /// The prost message after the format byte.
    fn encode_v1(&self, out: &mut Vec<u8>);
    /// The record from the prost message after the format byte.
    fn decode_v1(bytes: &[u8]) -> Result<Self, RecordError>;
}

/// Why stored bytes are not a record. Wrapped in [`StoreError::Corrupt`]
/// with the key, so the error names the record to look at.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("unknown record format byte {0:#04x}")]
    UnknownFormat(u8),
    #[error("malformed protobuf record: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("malformed JSON record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("field {field}: {reason}")]
    Field { field: &'static str, reason: String },
}

impl RecordError {
    fn field(field: &'static str, reason: impl ToString) -> Self {
        RecordError::Field {
            field,
            reason: reason.to_string(),
        }
    }
}

/// `record` in the current stored format.
pub(crate) fn encode<T: Record>(record: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(PROST_V1);
    record.encode_v1(&mut out);
    out
}

/// The record stored at `key`, in either format.
pub(crate) fn decode<T: Record>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_bytes(bytes).map_err(|e| StoreError::corrupt(key, e))
}

fn decode_bytes<T: Record>(bytes: &[u8]) -> Result<T, RecordError> {
    match bytes.first() {
        None => Err(RecordError::Empty),
        Some(&PROST_V1) => T::decode_v1(&bytes[1..]),
        Some(b'{') => Ok(serde_json::from_slice(bytes)?),
        Some(&other) => Err(RecordError::UnknownFormat(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Decision, Incident};
    use proptest::prelude::*;

    fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn decisions_round_trip_in_the_new_format_and_read_the_old() {
        for d in fixtures::decisions() {
            let bytes = encode(&d);
            assert_eq!(bytes[0], PROST_V1);
            assert_eq!(decode::<Decision>("k", &bytes).unwrap(), d);
            assert_eq!(decode::<Decision>("k", &json(&d)).unwrap(), d);
        }
    }

    #[test]
    fn incidents_round_trip_in_the_new_format_and_read_the_old() {
        for i in fixtures::incidents() {
            let bytes = encode(&i);
            assert_eq!(bytes[0], PROST_V1);
            assert_eq!(decode::<Incident>("k", &bytes).unwrap(), i);
            assert_eq!(decode::<Incident>("k", &json(&i)).unwrap(), i);
        }
    }

    #[test]
    fn the_binary_form_is_smaller_than_the_json() {
        for d in fixtures::decisions() {
            assert!(encode(&d).len() < json(&d).len());
        }
    }

    #[test]
    fn foreign_bytes_are_named_corrupt_records() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "empty record"),
            (b"\x02abc", "unknown record format byte 0x02"),
            (b"{\"token\":", "malformed JSON record"),
            (b"\x01\xff\xff\xff", "malformed protobuf record"),
        ];
        for (bytes, want) in cases {
            let e = decode::<Decision>("verdict:{INC-1}:dec:t", bytes).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("verdict:{INC-1}:dec:t"), "{text}");
            let source = std::error::Error::source(&e).unwrap().to_string();
            assert!(source.starts_with(want), "{source} vs {want}");
        }
    }

    #[test]
    fn a_record_missing_a_required_field_is_refused() {
        // An empty message: no token, no state, no times.
        let e = decode::<Decision>("k", &[PROST_V1]).unwrap_err();
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert!(source.starts_with("field "), "{source}");
        // A state number that no release wrote.
        // Field 3 (state) appended as varint 127: for a scalar field the
        // last occurrence wins.
        let mut bytes = encode(&fixtures::decisions()[0]);
        bytes.extend([0x18, 0x7f]);
        let e = decode::<Decision>("k", &bytes).unwrap_err();
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(source, "field state: unknown value 127");
    }

    /// Records with every field set (and one with every optional field
    /// empty), times with nanoseconds, so a field the conversion drops or
    /// rounds fails the round trip.
    mod fixtures {
        use crate::domain::proposal::{ConsensusInfo, Dissent, Refusal, WorkloadKind};
        use crate::domain::*;
        use chrono::{DateTime, Utc};
        use std::collections::BTreeMap;

        fn t(s: i64, ns: u32) -> DateTime<Utc> {
            DateTime::from_timestamp(s, ns).unwrap()
        }

        fn n(s: &str) -> K8sName {
            K8sName::parse(s).unwrap()
        }

        fn applied() -> AppliedRequests {
            let mut a = AppliedRequests::default();
            for r in ["req-1", "req-2"] {
                a.record(RequestId::parse(r).unwrap());
            }
            a
        }

        pub fn decisions() -> Vec<Decision> {
            let bare = Decision::start(
                IncidentId::parse("INC-7").unwrap(),
                DecisionMode::Auto,
                t(1_780_000_000, 123_456_789),
                chrono::Duration::minutes(15),
                t(1_780_000_030, 1),
            );
            let proposal = Proposal {
                provider: "openai".into(),
                model: "m".into(),
                description: "restart it".into(),
                reasoning: "because".into(),
                matched_rule: "oom".into(),
                from_cache: true,
                analysis_latency: std::time::Duration::new(1, 5),
                fallback_reason: Some(FallbackReason::CircuitOpen),
                consensus: Some(ConsensusInfo {
                    id: "c-1".into(),
                    score: 0.66,
                    agent_count: 3,
                    dissenting: vec![Dissent {
                        agent: "b".into(),
                        kubectl: "kubectl scale".into(),
                        reasoning: "r".into(),
                        text_warnings: vec![TextWarning::MentionsUrl, TextWarning::Truncated],
                    }],
                    refused: vec![Refusal {
                        agent: "c".into(),
                        reason: FallbackReason::Unsafe,
                        detail: "policy".into(),
                    }],
                }),
                model_confidence: Some(0.9),
                text_warnings: vec![TextWarning::HiddenCharacters],
                policy_hash: "abc".into(),
                ..Proposal::new(
                    ProposalSource::Consensus,
                    RemediationCommand {
                        verb: CommandVerb::Scale,
                        kind: WorkloadKind::StatefulSet,
                        name: n("db"),
                        namespace: n("shop"),
                        replicas: Some(3),
                    },
                    RiskLevel::High,
                    0.75,
                )
            };
            let full = Decision {
                state: DecisionState::Completed,
                mode: DecisionMode::Consensus,
                proposal: Some(proposal),
                version: 9,
                error: "e".into(),
                decided_by: "alice".into(),
                decided_at: Some(t(1_780_000_040, 7)),
                reason: "ok".into(),
                output: "deployment scaled".into(),
                completed_at: Some(t(-5, 0)),
                severity: Some(Severity::P1),
                decided_by_method: Some(AuthMethod::Jwt),
                approvals: vec![Approval {
                    subject: "bob".into(),
                    method: AuthMethod::Mtls,
                    at: t(1_780_000_041, 999_999_999),
                }],
                approvals_required: 2,
                preflight: Some(Preflight {
                    ok: false,
                    summary: "forbidden".into(),
                    checked_at: t(1_780_000_035, 0),
                    observed: Some(Observed {
                        resource_version: "4711".into(),
                        generation: 3,
                        rollback_to: Some(RollbackTarget {
                            replica_set: "checkout-5d8f".into(),
                            revision: 2,
                        }),
                    }),
                }),
                verification: Some(Verification {
                    state: VerificationState::Failed,
                    summary: "still firing".into(),
                    until: t(1_780_000_600, 0),
                    at: t(1_780_000_100, 0),
                }),
                applied_requests: applied(),
                plan: Some(ExecutionPlan {
                    observed: Some(Observed {
                        resource_version: "4712".into(),
                        generation: 4,
                        rollback_to: None,
                    }),
                    recheck: Some("changed since the dry run: would succeed".into()),
                    at: t(1_780_000_050, 1),
                }),
                claim: Some(ExecutionClaim {
                    runner: "runner-1".into(),
                    lease_id: "L-1".into(),
                    until: t(1_780_000_090, 0),
                }),
                ..bare.clone()
            };
            vec![bare, full]
        }

        pub fn incidents() -> Vec<Incident> {
            let bare = Incident::opened(
                IncidentId::parse("INC-8").unwrap(),
                "t".into(),
                Severity::P4,
                t(1_780_000_000, 42),
            );
            let full = Incident {
                status: IncidentStatus::Resolved,
                signals: vec![Signal {
                    alert_name: "HighLatency".into(),
                    labels: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "".into())]),
                    annotations: BTreeMap::from([("summary".into(), "slow".into())]),
                    starts_at: Some(t(1_779_999_000, 1)),
                    ends_at: None,
                    fingerprint: "f".into(),
                    status: SignalStatus::Firing,
                    generator_url: "http://x".into(),
                }],
                affected_services: vec![n("checkout"), n("cart")],
                namespace: Some(n("shop")),
                resolved_at: Some(t(1_780_000_100, 3)),
                version: 4,
                status_actor: "alice".into(),
                status_note: "fixed".into(),
                applied_requests: applied(),
                ..bare.clone()
            };
            vec![bare, full]
        }
    }

    proptest! {
        /// Whatever Redis hands back, decoding answers with a value or an
        /// error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512), first in 0u8..4) {
            let mut bytes = vec![[PROST_V1, b'{', 0x00, 0xff][first as usize]];
            bytes.extend(tail);
            let _ = decode::<Decision>("k", &bytes);
            let _ = decode::<Incident>("k", &bytes);
        }

        /// Flipping any byte of a valid record yields a record or an error,
        /// never a panic.
        #[test]
        fn mutated_records_never_panic(at in any::<prop::sample::Index>(), to in any::<u8>(), which in 0usize..3) {
            let fixtures = fixtures::decisions();
            let mut bytes = encode(&fixtures[which % fixtures.len()]);
            let i = at.index(bytes.len());
            bytes[i] = to;
            let _ = decode::<Decision>("k", &bytes);
        }
    }
}
