//! Verification of audit chains: every event's hash recomputed with the
//! key, every link to the previous hash and every sequence number checked.
//! Fed events in the order they were appended (any interleaving of
//! chains); keeps one head per chain, so memory grows with the chains
//! seen, not with the events.

use super::{Event, Signer};
use std::collections::BTreeMap;

/// Where a chain stops being whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    pub chain: String,
    /// The first event that does not fit.
    pub seq: u64,
    pub reason: String,
}

/// What [`Verifier::finish`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub events: u64,
    pub chains: u64,
    /// Chains whose oldest kept event is not their first: earlier events
    /// were trimmed by retention; the chain is verified from there.
    pub trimmed: Vec<(String, u64)>,
    /// The first break of each broken chain.
    pub breaks: Vec<Break>,
}

impl VerifyReport {
    /// Every chain seen is whole.
    pub fn is_whole(&self) -> bool {
        self.breaks.is_empty()
    }
}

#[derive(Debug)]
struct ChainState {
    seq: u64,
    hash: String,
    broken: bool,
}

/// Walks events and checks their chains.
#[derive(Debug)]
pub struct Verifier {
    signer: Signer,
    chains: BTreeMap<String, ChainState>,
    report: VerifyReport,
}

impl Verifier {
    pub fn new(signer: Signer) -> Verifier {
        Verifier {
            signer,
            chains: BTreeMap::new(),
            report: VerifyReport::default(),
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, e: &Event) {
        self.report.events += 1;
        let problem = self.problem(e);
        let state = self.chains.entry(e.chain.clone()).or_insert_with(|| {
            if e.seq > 1 {
                self.report.trimmed.push((e.chain.clone(), e.seq));
            }
            ChainState {
                seq: e.seq.saturating_sub(1),
                hash: e.prev.clone(),
                broken: false,
            }
        });
        if state.broken {
            return;
        }
        // A gap is reported at the first missing event; anything else at
        // the event that does not fit.
        let found = match problem {
            Some(reason) => Some((e.seq, reason)),
            None if e.seq != state.seq + 1 => Some((
                state.seq + 1,
                format!(
                    "event {} is missing (the chain continues at {})",
                    state.seq + 1,
                    e.seq
                ),
            )),
            None if e.prev != state.hash => Some((
                e.seq,
                "its link to the previous event does not match".into(),
            )),
            None => None,
        };
        match found {
            Some((seq, reason)) => {
                state.broken = true;
                self.report.breaks.push(Break {
                    chain: e.chain.clone(),
                    seq,
                    reason,
                });
            }
            None => {
                state.seq = e.seq;
                state.hash = e.hash.clone();
            }
        }
    }

    fn problem(&self, e: &Event) -> Option<String> {
        if e.alg != super::ALGORITHM {
            return Some(format!("unknown algorithm {:?}", e.alg));
        }
        if e.key_id != self.signer.key_id() {
            return Some(format!(
                "sealed with key {}, verifying with key {}",
                e.key_id,
                self.signer.key_id()
            ));
        }
        (self.signer.mac(e) != e.hash).then(|| "its hash does not match its content".into())
    }

    /// Checks that each chain ends at the head the store holds (a deleted
    /// last event leaves no gap to see otherwise).
    pub fn expect_head(&mut self, chain: &str, seq: u64) {
        let Some(state) = self.chains.get(chain) else {
            return;
        };
        if !state.broken && state.seq < seq {
            self.report.breaks.push(Break {
                chain: chain.to_owned(),
                seq: state.seq + 1,
                reason: format!("the chain's head is event {seq}; events missing"),
            });
        }
    }

    pub fn finish(mut self) -> VerifyReport {
        self.report.chains = self.chains.len() as u64;
        self.report
    }
}
