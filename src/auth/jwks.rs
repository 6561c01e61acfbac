//! A JWKS fetched from a URL (`auth_jwt_jwks_url`): the identity
//! provider's published keys, cached, refreshed every
//! `auth_jwt_jwks_refresh`, and refetched early when a token names a key
//! id (`kid`) the cache does not hold — the provider rotated its keys —
//! at most once a minute, so a flood of forged `kid`s cannot make verdict
//! hammer the provider.
//!
//! The refresh is lazy and owned here, not by the server's `Background`:
//! a check that finds the cache due (or meets an unknown `kid`) starts one
//! fetch on the runtime and goes on with the keys it has. A check
//! therefore never waits on the network, and no lock is held across a
//! fetch (the keys are an `Arc` swapped when a fetch succeeds). At most
//! one fetch is in flight, and each is bounded by a timeout and a body
//! size, so the detached task ends on its own within [`FETCH_TIMEOUT`].
//!
//! A failed or unusable refresh (network error, status, oversize body,
//! not a JWKS, no usable key) keeps the previous keys, is logged, and is
//! retried after [`RETRY_AFTER`] (or the refresh interval, if shorter).

use super::jwt::{Key, MAX_JWKS_BYTES, parse_keys};
use jsonwebtoken::Algorithm;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Default refresh interval of the cached keys.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);

/// Bounds of `auth_jwt_jwks_refresh`: often enough to follow a rotation,
/// rarely enough not to load the provider.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// See [`MIN_REFRESH`].
pub const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// The whole fetch (connect, status, body) takes at most this long.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A token with an unknown `kid` refetches the keys at most this often.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(60);

/// After a failed fetch, the next attempt waits at least this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// When to fetch next, and whether a fetch is running.
#[derive(Debug)]
struct Schedule {
    /// The cache is due for a refresh from this instant.
    due: Instant,
    /// The last refetch an unknown `kid` started.
    kid_refetch: Option<Instant>,
    in_flight: bool,
}

/// The keys of one JWKS URL, shared by the verifiers built for it (a
/// reload with the same URL keeps the cache).
#[derive(Debug)]
pub struct RemoteJwks {
    url: reqwest::Url,
    http: reqwest::Client,
    allowed: Vec<Algorithm>,
    refresh: Duration,
    keys: RwLock<Arc<Vec<Key>>>,
    schedule: Mutex<Schedule>,
    /// Whether any fetch ever succeeded.
    fetched: std::sync::atomic::AtomicBool,
}

impl RemoteJwks {
    /// A cache of `url`'s keys, empty until [`Self::fetch`] succeeds.
    pub fn new(url: &str, refresh: Duration, allowed: &[Algorithm]) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("auth_jwt_jwks_url {url:?}: not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(format!(
                "auth_jwt_jwks_url {url:?}: give an https:// (or http://) URL with a host"
            ));
        }
        if !(MIN_REFRESH..=MAX_REFRESH).contains(&refresh) {
            return Err(format!(
                "auth_jwt_jwks_refresh must be between {}s and {}s",
                MIN_REFRESH.as_secs(),
                MAX_REFRESH.as_secs()
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT / 2)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("auth_jwt_jwks_url: HTTP client: {e}"))?;
        Ok(RemoteJwks {
            url: parsed,
            http,
            allowed: allowed.to_vec(),
            refresh,
            keys: RwLock::new(Arc::new(Vec::new())),
            schedule: Mutex::new(Schedule {
                due: Instant::now(),
                kid_refetch: None,
                in_flight: false,
            }),
            fetched: false.into(),
        })
    }

    /// Whether a verifier for `url`, `refresh` and `allowed` can share this
    /// cache.
    pub fn serves(&self, url: &str, refresh: Duration, allowed: &[Algorithm]) -> bool {
        (self.url.as_str() == url || reqwest::Url::parse(url).is_ok_and(|u| u == self.url))
            && self.refresh == refresh
            && self.allowed == allowed
    }

    /// Whether a fetch ever succeeded.
    pub fn fetched(&self) -> bool {
        self.fetched.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The keys in force.
    pub fn keys(&self) -> Arc<Vec<Key>> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Fetches the JWKS and swaps its keys in; an error (naming the URL)
    /// keeps the old keys. Returns how many keys are usable.
    pub async fn fetch(&self) -> Result<usize, String> {
        let result = self.fetch_keys().await;
        let now = Instant::now();
        let mut s = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        s.due = match &result {
            Ok(_) => now + self.refresh,
            Err(_) => now + self.refresh.min(RETRY_AFTER),
        };
        drop(s);
        let keys = result.map_err(|e| format!("auth_jwt_jwks_url {}: {e}", self.url))?;
        let n = keys.len();
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(keys),
            Err(p) => *p.into_inner() = Arc::new(keys),
        }
        self.fetched
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(n)
    }

    async fn fetch_keys(&self) -> Result<Vec<Key>, String> {
        let mut resp = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("cannot be read: {}", without_url(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("answered HTTP {}", resp.status()));
        }
        let too_big = || format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes");
        if resp.content_length().is_some_and(|n| n > MAX_JWKS_BYTES) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("cannot be read: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES as usize {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| "the JWKS is not UTF-8".to_owned())?;
        parse_keys(text, &self.allowed)
    }

    /// Called on every check: starts a background fetch when the cache is
    /// due, or when `unknown_kid` and no unknown `kid` refetched in the
    /// last [`UNKNOWN_KID_INTERVAL`]. Never waits.
    pub fn poke(self: &Arc<Self>, unknown_kid: bool) {
        let now = Instant::now();
        {
            let mut s = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
            if s.in_flight {
                return;
            }
            let kid_may = unknown_kid
                && s.kid_refetch
                    .is_none_or(|t| now >= t + UNKNOWN_KID_INTERVAL);
            if !(kid_may || now >= s.due) {
                return;
            }
            // Without a runtime (a synchronous caller) nothing is started.
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            s.in_flight = true;
            if kid_may {
                s.kid_refetch = Some(now);
            }
            let me = Arc::clone(self);
            rt.spawn(async move {
                match me.fetch().await {
                    Ok(n) => tracing::info!(url = %me.url, keys = n, "JWKS refreshed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "JWKS refresh failed; the previous keys stay in force");
                        crate::metrics::jwks_refresh_failed();
                    }
                }
                me.schedule
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .in_flight = false;
            });
        }
    }
}

/// A reqwest error's reason without the URL (which the caller names once).
fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut why = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    if let Some(source) = e.source() {
        why += &format!(" ({source})");
    }
    why
}
