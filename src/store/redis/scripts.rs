//! The Lua scripts of the Redis store (`lua/*.lua`, compiled in and invoked
//! by SHA) and the mapping of their replies to store types.
//!
//! Every read-modify-write is one script, so it is atomic in Redis. The
//! compare-and-set scripts all answer `{flag, current}` (1 = written, else
//! the record stored now, or false), and that reply becomes a [`Cas`] in one
//! function, [`cas_reply`], whatever the record type.

use crate::store::{Cas, StoreError};
use redis::{Script, Value};

/// A write script with the statistics and audit preludes (`lua/stats.lua`,
/// which defines `apply_stats`; `lua/audit.lua`, `audit_moved` and
/// `append_audit`) in front of it.
macro_rules! with_stats {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/stats.lua"),
            include_str!("lua/audit.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// Every script the store runs, hashed once at start-up.
pub(super) struct Scripts {
    pub update_incident: Script,
    pub update_decision: Script,
    pub create_decision: Script,
    pub incident_and_current: Script,
    pub decision_by_token: Script,
    pub list_decisions: Script,
    pub create_incident: Script,
    pub set_group: Script,
    pub top_services: Script,
    pub take_lease: Script,
    pub release_lease: Script,
    pub append_audit: Script,
    pub audit_chain: Script,
}

impl Scripts {
    pub fn load() -> Self {
        Scripts {
            update_incident: with_stats!("update_incident.lua"),
            update_decision: with_stats!("update_decision.lua"),
            create_decision: with_stats!("create_decision.lua"),
            incident_and_current: Script::new(include_str!("lua/incident_and_current.lua")),
            decision_by_token: Script::new(include_str!("lua/decision_by_token.lua")),
            list_decisions: Script::new(include_str!("lua/list_decisions.lua")),
            set_group: Script::new(include_str!("lua/set_group.lua")),
            create_incident: with_stats!("create_incident.lua"),
            top_services: Script::new(include_str!("lua/top_services.lua")),
            take_lease: Script::new(include_str!("lua/take_lease.lua")),
            release_lease: Script::new(include_str!("lua/release_lease.lua")),
            append_audit: with_stats!("append_audit.lua"),
            audit_chain: Script::new(include_str!("lua/audit_chain.lua")),
        }
    }
}

/// One element of a script's reply that is a (binary) string or nothing
/// (Lua's `false` and `nil` both arrive as "nothing", as does a missing
/// element).
pub(super) fn optional_bytes(v: Option<Value>) -> Result<Option<Vec<u8>>, StoreError> {
    match v {
        None | Some(Value::Nil) | Some(Value::Boolean(false)) | Some(Value::Int(0)) => Ok(None),
        Some(v) => Ok(Some(redis::from_redis_value(v)?)),
    }
}

/// A compare-and-set script's `{flag}` or `{flag, current}` reply as a
/// [`Cas`], the current value (if any) read by `parse`.
pub(super) fn cas_reply<T>(
    reply: Vec<Value>,
    parse: impl FnOnce(&[u8]) -> Result<T, StoreError>,
) -> Result<Cas<T>, StoreError> {
    let mut it = reply.into_iter();
    let flag: i64 = redis::from_redis_value(it.next().unwrap_or(Value::Int(0)))?;
    if flag == 1 {
        return Ok(Cas::Written);
    }
    let current = optional_bytes(it.next())?;
    Ok(Cas::Conflict(current.as_deref().map(parse).transpose()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn parse(s: &[u8]) -> Result<String, StoreError> {
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    #[test]
    fn maps_cas_replies() {
        assert_eq!(
            cas_reply(vec![Value::Int(1)], parse).ok(),
            Some(Cas::Written)
        );
        assert_eq!(
            cas_reply(vec![Value::Int(0), text("v2")], parse).ok(),
            Some(Cas::Conflict(Some("v2".into())))
        );
        for nothing in [Value::Nil, Value::Boolean(false), Value::Int(0)] {
            assert_eq!(
                cas_reply(vec![Value::Int(0), nothing], parse).ok(),
                Some(Cas::Conflict(None))
            );
        }
        assert_eq!(cas_reply(vec![], parse).ok(), Some(Cas::Conflict(None)));
    }
}
