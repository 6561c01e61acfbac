//! Client certificates as credentials: the names a *verified* client
//! certificate carries ([`ClientCert`]) and the configured map from one of
//! those names to a principal (`[[auth_mtls]]`, [`MtlsEntry`]).
//!
//! The TLS layer (`server/tls.rs`) has already checked the certificate
//! chain against the configured client CA before anything here runs: this
//! module only decides *who* a verified certificate is. A certificate that
//! verifies but that no entry names is refused (UNAUTHENTICATED): trusting
//! a CA is not the same as giving everything it signs a role.
//!
//! A certificate is matched by its subject's common name (`CN=runner-1`),
//! a DNS subject alternative name (`DNS=runner-1.prod.example.com`) or a
//! URI one (`URI=spiffe://example.org/ns/prod/sa/runner`); the entries are
//! tried in file order and the first that names one of the certificate's
//! names wins.

use crate::domain::{AuthMethod, Principal, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The longest name kept from a certificate (longer ones are skipped:
/// they can name no configured entry worth matching).
const MAX_NAME: usize = 1024;
/// The most names kept from one certificate.
const MAX_NAMES: usize = 64;

/// One name a certificate carries, of the kinds an entry can match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertName {
    /// The subject's common name.
    CommonName(String),
    /// A DNS subject alternative name.
    Dns(String),
    /// A URI subject alternative name (e.g. a SPIFFE id).
    Uri(String),
}

impl CertName {
    /// The name without its kind (what becomes the principal's subject
    /// when the entry names none).
    pub fn value(&self) -> &str {
        match self {
            CertName::CommonName(v) | CertName::Dns(v) | CertName::Uri(v) => v,
        }
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertName::CommonName(v) => write!(f, "CN={v}"),
            CertName::Dns(v) => write!(f, "DNS={v}"),
            CertName::Uri(v) => write!(f, "URI={v}"),
        }
    }
}

impl FromStr for CertName {
    type Err = String;

    /// `CN=…`, `DNS=…` or `URI=…` (the kind is case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected CN=…, DNS=… or URI=…"))?;
        if value.is_empty() || value.len() > MAX_NAME || value.chars().any(char::is_control) {
            return Err(format!(
                "{s:?}: the name after `=` must be a non-empty line"
            ));
        }
        let value = value.to_owned();
        match kind.to_ascii_uppercase().as_str() {
            "CN" => Ok(CertName::CommonName(value)),
            "DNS" => Ok(CertName::Dns(value.to_ascii_lowercase())),
            "URI" => Ok(CertName::Uri(value)),
            _ => Err(format!("{s:?}: expected CN=…, DNS=… or URI=…")),
        }
    }
}

impl Serialize for CertName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The names of a verified client certificate, read once per connection
/// (at the TLS handshake), so requests only compare strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    names: Vec<CertName>,
}

impl ClientCert {
    /// The names of the DER certificate `der` (the leaf of the chain the
    /// TLS layer verified). Names that are not UTF-8, too long, or past
    /// [`MAX_NAMES`] are skipped; a certificate that does not parse has no
    /// names (and so maps to no principal).
    pub fn from_der(der: &[u8]) -> ClientCert {
        use x509_parser::extensions::GeneralName;
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return ClientCert::default();
        };
        let mut names = Vec::new();
        for cn in cert.subject().iter_common_name() {
            if let Ok(v) = cn.as_str() {
                names.push(CertName::CommonName(v.to_owned()));
            }
        }
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(v) => names.push(CertName::Dns(v.to_ascii_lowercase())),
                    GeneralName::URI(v) => names.push(CertName::Uri((*v).to_owned())),
                    _ => {}
                }
            }
        }
        names.retain(|n| !n.value().is_empty() && n.value().len() <= MAX_NAME);
        names.truncate(MAX_NAMES);
        ClientCert { names }
    }

    /// A certificate with exactly these names (tests).
    pub fn with_names(names: Vec<CertName>) -> ClientCert {
        ClientCert { names }
    }

    /// The names read from the certificate.
    pub fn names(&self) -> &[CertName] {
        &self.names
    }
}

/// One configured certificate principal (`[[auth_mtls]]` in the config
/// file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsEntry {
    /// The certificate name to match: `CN=…`, `DNS=…` or `URI=…`.
    pub cert: CertName,
    /// The principal's subject (recorded as the approver, in logs and the
    /// audit trail); default: the matched name's value (`runner-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What the principal may do.
    pub roles: BTreeSet<Role>,
}

/// The configured certificate principals, checked once.
#[derive(Debug, Clone, Default)]
pub struct MtlsPrincipals {
    entries: Vec<(CertName, Principal)>,
}

impl MtlsPrincipals {
    /// Checks the entries; an error names the entry.
    pub fn new(entries: &[MtlsEntry]) -> Result<Self, String> {
        let mut out: Vec<(CertName, Principal)> = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let at = format!("auth_mtls[{i}] ({})", e.cert);
            let subject = e
                .subject
                .clone()
                .unwrap_or_else(|| e.cert.value().to_owned());
            if subject.trim().is_empty() || subject.chars().any(char::is_control) {
                return Err(format!("{at}: subject must be a non-empty line"));
            }
            if e.roles.is_empty() {
                return Err(format!("{at}: give at least one role"));
            }
            if out.iter().any(|(c, _)| c == &e.cert) {
                return Err(format!(
                    "{at}: the same certificate name is configured twice"
                ));
            }
            out.push((
                e.cert.clone(),
                Principal {
                    subject,
                    method: AuthMethod::Mtls,
                    roles: e.roles.clone(),
                },
            ));
        }
        Ok(MtlsPrincipals { entries: out })
    }

    /// Whether any certificate principal is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of the first entry (in file order) naming one of
    /// `cert`'s names.
    pub fn lookup(&self, cert: &ClientCert) -> Option<&Principal> {
        self.entries
            .iter()
            .find(|(name, _)| cert.names.contains(name))
            .map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_their_kind_and_refuse_the_rest() {
        assert_eq!(
            "CN=runner-1".parse(),
            Ok(CertName::CommonName("runner-1".into()))
        );
        assert_eq!(
            "dns=Runner.Example.com".parse(),
            Ok(CertName::Dns("runner.example.com".into()))
        );
        assert_eq!(
            "URI=spiffe://example.org/runner".parse(),
            Ok(CertName::Uri("spiffe://example.org/runner".into()))
        );
        for bad in ["runner-1", "CN=", "O=acme", "CN=a\nb"] {
            assert!(bad.parse::<CertName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_first_entry_naming_the_certificate_wins() {
        let m = MtlsPrincipals::new(&[
            MtlsEntry {
                cert: "DNS=runner.example.com".parse().unwrap(),
                subject: Some("runner".into()),
                roles: [Role::Executor].into_iter().collect(),
            },
            MtlsEntry {
                cert: "CN=alice".parse().unwrap(),
                subject: None,
                roles: [Role::Approver].into_iter().collect(),
            },
        ])
        .unwrap();
        let alice = ClientCert::with_names(vec![CertName::CommonName("alice".into())]);
        let p = m.lookup(&alice).unwrap();
        assert_eq!((p.subject.as_str(), p.method), ("alice", AuthMethod::Mtls));
        let both = ClientCert::with_names(vec![
            CertName::CommonName("alice".into()),
            CertName::Dns("runner.example.com".into()),
        ]);
        assert_eq!(m.lookup(&both).unwrap().subject, "runner");
        let stranger = ClientCert::with_names(vec![CertName::CommonName("mallory".into())]);
        assert!(m.lookup(&stranger).is_none());
        // A CN is not a DNS name.
        let cn = ClientCert::with_names(vec![CertName::CommonName("runner.example.com".into())]);
        assert!(m.lookup(&cn).is_none());
    }

    #[test]
    fn bad_entries_are_named() {
        let dup = MtlsEntry {
            cert: "CN=a".parse().unwrap(),
            subject: None,
            roles: [Role::Viewer].into_iter().collect(),
        };
        let err = MtlsPrincipals::new(&[dup.clone(), dup.clone()]).unwrap_err();
        assert!(err.contains("auth_mtls[1]"), "{err}");
        let none = MtlsEntry {
            roles: BTreeSet::new(),
            ..dup
        };
        assert!(MtlsPrincipals::new(&[none]).unwrap_err().contains("role"));
    }
}
