//! The audit side of the Redis write scripts: sealing an event against the
//! chain head it will follow, the six script arguments `lua/audit.lua`
//! reads, the `{2, seq, hash}` "chain moved" reply, and the reads.
//!
//! Sealing needs the previous hash, which lives in Redis, while the key
//! must not: so the event is sealed here against the head this replica
//! last saw (cached per chain) and the script checks that head is still
//! the chain's. If another writer appended meanwhile, the script writes
//! nothing and returns the head now; the event is resealed and the script
//! run again. Each retry means another writer succeeded, so the chain
//! always progresses; the attempts are bounded all the same. Each write
//! method loops `seal` → run the script → [`RedisStore::settle`].

use super::RedisStore;
use crate::audit::{self, Head, Position, Signer};
use crate::store::{StoreError, decode, keys};
use lru::LruCache;
use redis::{ScriptInvocation, Value};
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// Attempts at appending to a chain that keeps moving before giving up.
const ATTEMPTS: usize = 32;

/// Chain heads remembered (a miss costs one extra round trip).
pub(super) const HEAD_CACHE_ENTRIES: NonZeroUsize = NonZeroUsize::new(10_000).expect("non-zero");

/// The audit state of a store: the signer (None = auditing off) and the
/// last head seen of recently written chains.
pub(super) struct AuditState {
    pub signer: Option<Signer>,
    /// Where this replica's appended events also go, if anywhere.
    pub sink: Option<crate::store::AuditSink>,
    pub heads: Mutex<LruCache<String, Head>>,
}

impl AuditState {
    pub fn new() -> Self {
        AuditState {
            signer: None,
            sink: None,
            heads: Mutex::new(LruCache::new(HEAD_CACHE_ENTRIES)),
        }
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, LruCache<String, Head>> {
        // One call on the map per lock: a poisoned lock guards a whole map.
        self.heads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a write stands in its attempts to fit its event to the chain.
#[derive(Default)]
pub(super) struct Attempt {
    /// The head the chain was found at, when an attempt found it moved.
    pub head: Option<Head>,
    tries: usize,
}

/// One attempt's audit arguments and the head they lead to.
pub(super) struct Sealed {
    pub args: Vec<String>,
    chain: Option<(String, Head)>,
}

impl RedisStore {
    /// The audit arguments for `draft` sealed after `head` (or after the
    /// cached head when `head` is None); empty arguments when there is
    /// nothing to audit.
    pub(super) fn seal(&self, draft: Option<&audit::Draft>, head: Option<Head>) -> Sealed {
        let (Some(signer), Some(draft)) = (&self.audit.signer, draft) else {
            return Sealed {
                args: vec![String::new(); 6],
                chain: None,
            };
        };
        let chain = draft.chain().to_owned();
        let head = head
            .or_else(|| self.audit.heads().get(&chain).cloned())
            .unwrap_or_default();
        let event = signer.seal(draft, &head);
        let cutoff = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let cutoff = cutoff.saturating_sub(self.retention.audit.as_millis() as u64);
        let args = vec![
            keys::audit_head(&chain),
            head.seq.to_string(),
            event.hash.clone(),
            crate::store::encode(&event),
            keys::AUDIT_STREAM.to_owned(),
            cutoff.to_string(),
        ];
        Sealed {
            args,
            chain: Some((
                chain,
                Head {
                    seq: event.seq,
                    hash: event.hash,
                },
            )),
        }
    }

    /// Runs the write script `call` builds from the sealed audit arguments
    /// until the audit chain's head did not move under it, at most
    /// `ATTEMPTS` times: the retry every audited write shares. (A builder,
    /// not an async closure: the future stays `Send` for `async_trait`.)
    pub(super) async fn audited<'s>(
        &self,
        draft: Option<&audit::Draft>,
        call: impl Fn(&[String]) -> ScriptInvocation<'s>,
    ) -> Result<Vec<Value>, StoreError> {
        let mut attempt = Attempt::default();
        let audited = draft.is_some() && self.audit.signer.is_some();
        loop {
            let sealed = self.seal(draft, attempt.head.take());
            let invocation = call(&sealed.args);
            let settled = match self.run(async |c| invocation.invoke_async(c).await).await {
                Ok(reply) => self.settle_audit(draft, sealed, reply, &mut attempt),
                Err(e) => Err(e),
            };
            match settled {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    if audited {
                        crate::metrics::audit_write_failed();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// [`Self::audited`], with `first` sent in the same pipeline as the
    /// script's first attempt: one round trip instead of two for a write
    /// that must put an index entry down before its script (issue 20
    /// item 3). Redis runs a pipeline's commands in order, so `first` still
    /// lands before the script. When Redis does not know the script yet
    /// (NOSCRIPT: its first use, or after a restart) the two go separately,
    /// as before; `first` runs twice then, so it must be idempotent.
    pub(super) async fn audited_after<'s>(
        &self,
        first: &redis::Cmd,
        draft: Option<&audit::Draft>,
        call: impl Fn(&[String]) -> ScriptInvocation<'s>,
    ) -> Result<Vec<Value>, StoreError> {
        let mut attempt = Attempt::default();
        let mut first = Some(first);
        loop {
            let sealed = self.seal(draft, attempt.head.take());
            let invocation = call(&sealed.args);
            let reply: Vec<Value> = match first.take() {
                Some(cmd) => {
                    self.run(async |c| pipelined(c, cmd, &invocation).await)
                        .await?
                }
                None => self.run(async |c| invocation.invoke_async(c).await).await?,
            };
            if let Some(reply) = self.settle_audit(draft, sealed, reply, &mut attempt)? {
                return Ok(reply);
            }
        }
    }

    /// Settles one attempt of a write script: `Some(reply)` when the script
    /// ran to its end (written or lost its compare-and-set), `None` when the
    /// chain had moved and the caller must reseal (`attempt` then holds the
    /// head now) — and an error once the attempts are spent.
    pub(super) fn settle_audit(
        &self,
        draft: Option<&audit::Draft>,
        sealed: Sealed,
        reply: Vec<Value>,
        attempt: &mut Attempt,
    ) -> Result<Option<Vec<Value>>, StoreError> {
        match moved(&reply)? {
            Some(now) => {
                if let Some((chain, _)) = &sealed.chain {
                    self.audit.heads().put(chain.clone(), now.clone());
                }
                attempt.head = Some(now);
                attempt.tries += 1;
                if attempt.tries >= ATTEMPTS {
                    return Err(StoreError::AuditContended {
                        chain: draft.map(|d| d.chain().to_owned()).unwrap_or_default(),
                    });
                }
                Ok(None)
            }
            None => {
                if let (Some((chain, next)), Some(Value::Int(1))) = (sealed.chain, reply.first()) {
                    self.audit.heads().put(chain, next);
                    if let Some(d) = draft {
                        crate::metrics::audit_event_written(&d.outcome);
                    }
                    if let (Some(sink), Some(json)) = (&self.audit.sink, sealed.args.get(3)) {
                        sink.offer(json.clone());
                    }
                }
                Ok(Some(reply))
            }
        }
    }

    /// [`crate::store::Store::append_audit`].
    pub(super) async fn append_event(&self, draft: &audit::Draft) -> Result<(), StoreError> {
        if self.audit.signer.is_none() {
            return Ok(());
        }
        let script = &self.scripts.append_audit;
        let mut attempt = Attempt::default();
        loop {
            let sealed = self.seal(Some(draft), attempt.head.take());
            let settled = match self
                .run(async |c| script.arg(&sealed.args).arg(0).invoke_async(c).await)
                .await
            {
                Ok(reply) => self.settle_audit(Some(draft), sealed, reply, &mut attempt),
                Err(e) => Err(e),
            };
            match settled {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                Err(e) => {
                    crate::metrics::audit_write_failed();
                    return Err(e);
                }
            }
        }
    }

    /// [`crate::store::Store::audit_events`]: one XRANGE.
    pub(super) async fn read_events(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError> {
        let start = start_after(after);
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .run(async |c| {
                redis::cmd("XRANGE")
                    .arg(keys::AUDIT_STREAM)
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(c)
                    .await
            })
            .await?;
        entries_to_events(entries)
    }

    /// [`crate::store::Store::audit_chain_events`]: one script reading the
    /// chain's index and each of its events (`lua/audit_chain.lua`).
    pub(super) async fn read_chain_events(
        &self,
        chain: &str,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, audit::Event)>, StoreError> {
        let start = start_after(after);
        let index = keys::audit_index(chain);
        let script = &self.scripts.audit_chain;
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .run(async |c| {
                script
                    .key(&index)
                    .key(keys::AUDIT_STREAM)
                    .arg(&start)
                    .arg(limit)
                    .invoke_async(c)
                    .await
            })
            .await?;
        entries_to_events(entries)
    }

    /// [`crate::store::Store::audit_head`].
    pub(super) async fn read_head(&self, chain: &str) -> Result<Head, StoreError> {
        let key = keys::audit_head(chain);
        let (seq, hash): (Option<u64>, Option<String>) = self
            .run(async |c| {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("seq")
                    .arg("hash")
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(Head {
            seq: seq.unwrap_or(0),
            hash: hash.unwrap_or_default(),
        })
    }
}

/// The XRANGE start just after `after` (from the oldest when None).
fn start_after(after: Option<Position>) -> String {
    match after {
        Some(p) => format!("({p}"),
        None => "-".to_owned(),
    }
}

/// Stream entries as positioned events. An entry without an event (not
/// written by verdict, or trimmed from the trail while still indexed) is
/// skipped: `verify` notices a gap in its chain.
fn entries_to_events(
    entries: Vec<(String, Vec<(String, String)>)>,
) -> Result<Vec<(Position, audit::Event)>, StoreError> {
    let mut out = Vec::with_capacity(entries.len());
    for (id, fields) in entries {
        let pos = Position::parse(&id)
            .ok_or_else(|| StoreError::corrupt(keys::AUDIT_STREAM, format!("id {id}")))?;
        if let Some((_, json)) = fields.iter().find(|(f, _)| f == "e") {
            out.push((pos, decode(keys::AUDIT_STREAM, json)?));
        }
    }
    Ok(out)
}

/// The head in a `{2, seq, hash}` reply, if that is what it is.
fn moved(reply: &[Value]) -> Result<Option<Head>, StoreError> {
    if !matches!(reply.first(), Some(Value::Int(2))) {
        return Ok(None);
    }
    let seq: String = redis::from_redis_value(reply.get(1).cloned().unwrap_or(Value::Nil))?;
    let hash: String = redis::from_redis_value(reply.get(2).cloned().unwrap_or(Value::Nil))?;
    let seq = seq
        .parse()
        .map_err(|e| StoreError::corrupt("audit head", Box::new(e) as crate::store::BoxError))?;
    Ok(Some(Head { seq, hash }))
}

/// The same store, auditing with `signer`.
pub(super) fn set_signer(state: &mut AuditState, signer: Signer) {
    state.signer = Some(signer);
}

/// `first`, then `script`, in one pipeline; separately when the script is
/// not loaded (see [`RedisStore::audited_after`]).
async fn pipelined(
    c: &mut redis::aio::MultiplexedConnection,
    first: &redis::Cmd,
    script: &ScriptInvocation<'_>,
) -> Result<Vec<Value>, redis::RedisError> {
    let mut pipe = redis::pipe();
    pipe.add_command(first.clone())
        .ignore()
        .invoke_script(script);
    match pipe.query_async::<(Vec<Value>,)>(c).await {
        Ok((reply,)) => Ok(reply),
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            first.query_async::<()>(c).await?;
            script.invoke_async(c).await
        }
        Err(e) => Err(e),
    }
}
