//! The chat notifier's records in Redis ([`NotifyStore`] for
//! [`RedisStore`]); the layout is in `keys.rs`, the semantics in
//! `store/notify.rs`.

use super::RedisStore;
use crate::domain::Token;
use crate::store::keys;
use crate::store::notify::{Claim, NotifyStore};
use crate::store::{StoreError, decode};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use redis::Script;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/notify_push.lua")));
static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/notify_claim.lua")));
static SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/notify_settle.lua")));
static LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/notify_lease.lua")));
static CLAIM_UPDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/notify_claim_update.lua")));

fn ms(d: Duration) -> u64 {
    d.as_millis().clamp(1, u64::MAX as u128) as u64
}

impl RedisStore {
    /// Sets `key` to `json`, expiring after `ttl`: the chat cards and
    /// buttons, which are only worth keeping while a person may click them.
    async fn set_px(&self, key: &str, json: &str, ttl: Duration) -> Result<(), StoreError> {
        self.run(async |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(json)
                .arg("PX")
                .arg(ms(ttl))
                .query_async::<()>(c)
                .await
        })
        .await
    }

    /// Runs the settle script for `claim`; true when it went dead.
    async fn settle(
        &self,
        claim: &Claim,
        how: &str,
        at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let dead: i64 = self
            .run(async |c| {
                SETTLE
                    .key(keys::NOTIFY_OUTBOX)
                    .key(keys::NOTIFY_CLAIMS)
                    .key(keys::NOTIFY_PENDING)
                    .key(keys::NOTIFY_ATTEMPTS)
                    .key(keys::NOTIFY_COUNTS)
                    .arg(claim.token.as_str())
                    .arg(claim.score)
                    .arg(how)
                    .arg(at.timestamp_millis())
                    .arg(max_attempts)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(dead == 1)
    }
}

#[async_trait]
impl NotifyStore for RedisStore {
    async fn outbox_push(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        let ms = now.timestamp_millis();
        self.run(async |c| {
            PUSH.key(keys::NOTIFY_OUTBOX)
                .key(keys::NOTIFY_CLAIMS)
                .key(keys::NOTIFY_PENDING)
                .arg(token.as_str())
                .arg(ms)
                .arg(ms)
                .invoke_async::<i64>(c)
                .await
        })
        .await
        .map(|_| ())
    }

    async fn outbox_claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let score = now.timestamp_millis() + ms(lease) as i64;
        let token: Option<String> = self
            .run(async |c| {
                CLAIM
                    .key(keys::NOTIFY_OUTBOX)
                    .key(keys::NOTIFY_CLAIMS)
                    .key(keys::NOTIFY_PENDING)
                    .arg(now.timestamp_millis())
                    .arg(score)
                    .invoke_async(c)
                    .await
            })
            .await?;
        token
            .map(|t| {
                Token::parse(&t)
                    .map(|token| Claim { token, score })
                    .map_err(|e| StoreError::corrupt(keys::NOTIFY_OUTBOX, e))
            })
            .transpose()
    }

    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let first: Vec<(String, f64)> = self
            .run(async |c| {
                redis::cmd("ZRANGE")
                    .arg(keys::NOTIFY_OUTBOX)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(first
            .first()
            .and_then(|(_, s)| Utc.timestamp_millis_opt(*s as i64).single()))
    }

    async fn outbox_done(&self, claim: &Claim) -> Result<(), StoreError> {
        self.settle(claim, "done", Utc::now(), 0).await.map(|_| ())
    }

    async fn outbox_defer(&self, claim: &Claim, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.settle(claim, "defer", at, 0).await.map(|_| ())
    }

    async fn outbox_retry(&self, claim: &Claim, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.settle(claim, "retry", at, 0).await.map(|_| ())
    }

    async fn outbox_failed(
        &self,
        claim: &Claim,
        at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        self.settle(claim, "failed", at, max_attempts.max(1)).await
    }

    async fn card(&self, token: &Token) -> Result<Option<String>, StoreError> {
        let key = keys::notify_card(token);
        self.run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await
    }

    async fn save_card(&self, token: &Token, json: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = keys::notify_card(token);
        self.set_px(&key, json, ttl).await
    }

    async fn put_button(&self, id: &str, json: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = keys::notify_button(id);
        self.set_px(&key, json, ttl).await
    }

    async fn button(&self, id: &str) -> Result<Option<String>, StoreError> {
        let key = keys::notify_button(id);
        self.run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await
    }

    async fn take_button(&self, id: &str) -> Result<Option<String>, StoreError> {
        let key = keys::notify_button(id);
        self.run(async |c| redis::cmd("GETDEL").arg(&key).query_async(c).await)
            .await
    }

    async fn lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = keys::notify_lease(name);
        let held: i64 = self
            .run(async |c| {
                LEASE
                    .key(&key)
                    .arg(owner)
                    .arg(ms(ttl))
                    .arg("take")
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(held == 1)
    }

    async fn release_poller_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let key = keys::notify_lease(name);
        self.run(async |c| {
            LEASE
                .key(&key)
                .arg(owner)
                .arg(1)
                .arg("release")
                .invoke_async::<i64>(c)
                .await
        })
        .await
        .map(|_| ())
    }

    async fn update_offset(&self, name: &str) -> Result<i64, StoreError> {
        let key = keys::notify_offset(name);
        let v: Option<String> = self
            .run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        v.map_or(Ok(0), |s| decode(&key, &s))
    }

    async fn claim_update(&self, name: &str, owner: &str, id: i64) -> Result<bool, StoreError> {
        let (lease, offset) = (keys::notify_lease(name), keys::notify_offset(name));
        let ok: i64 = self
            .run(async |c| {
                CLAIM_UPDATE
                    .key(&lease)
                    .key(&offset)
                    .arg(owner)
                    .arg(id)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(ok == 1)
    }

    async fn count(&self, field: &str, by: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            redis::cmd("HINCRBY")
                .arg(keys::NOTIFY_COUNTS)
                .arg(field)
                .arg(by)
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        self.run(async |c| {
            redis::cmd("HGETALL")
                .arg(keys::NOTIFY_COUNTS)
                .query_async(c)
                .await
        })
        .await
    }
}
