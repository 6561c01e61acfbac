//! Field-level validation errors, collected so a caller learns every problem
//! of a request at once (they become `google.rpc.BadRequest` in `api/`).
//!
//! What is collected is bounded, because it travels back in the response
//! *headers* (`grpc-status-details-bin`, base64) and grpc-core clients drop
//! a response whose headers pass 8 KiB (soft) or 16 KiB (hard) with
//! `RESOURCE_EXHAUSTED "Stream removed"`: the caller would learn nothing.
//! So one request reports at most [`MAX_LISTED`] violations and at most
//! [`BUDGET`] bytes of text, each field path cut to [`MAX_FIELD`] bytes and
//! each description to [`MAX_DESCRIPTION`]; the rest are counted and named
//! by one last violation on the field [`MORE_FIELD`] ("and 980 more
//! violations"). The summary in `grpc-message` names at most three
//! fields. However bad the request, the encoded details stay under 4 KiB
//! and the two headers together under 6 KiB. Control characters in either part are escaped
//! (`\u{1b}`), so a refused value cannot reach a terminal through the error.

use std::fmt;

/// At most this many violations are listed; the rest are counted.
pub const MAX_LISTED: usize = 20;
/// At most this many bytes of field paths and descriptions are listed.
pub const BUDGET: usize = 2 * 1024;
/// A field path is cut to this many bytes.
pub const MAX_FIELD: usize = 128;
/// A description is cut to this many bytes.
pub const MAX_DESCRIPTION: usize = 256;
/// The field of the violation that counts the ones not listed.
pub const MORE_FIELD: &str = "...";

/// One invalid field: its path in the request (`incident.signals[2].alert_name`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Every violation found in one request, up to the bounds above. Empty
/// means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    listed: Vec<FieldViolation>,
    /// Bytes of text in `listed`.
    used: usize,
    /// Violations recorded after the bounds were reached.
    omitted: usize,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`. Past the bounds it is only counted,
    /// and once one is counted so are all later ones, so the list is always
    /// the *first* violations of the request.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        let field = bounded(&field.into(), MAX_FIELD);
        let description = bounded(&description.into(), MAX_DESCRIPTION);
        let size = field.len() + description.len();
        if self.omitted > 0 || self.listed.len() >= MAX_LISTED || self.used + size > BUDGET {
            self.omitted += 1;
            return;
        }
        self.used += size;
        self.listed.push(FieldViolation { field, description });
    }

    /// Records the error of a parse, if any, and returns the value otherwise.
    pub fn check<T, E: fmt::Display>(
        &mut self,
        field: impl Into<String>,
        r: Result<T, E>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// Checks that a free-text field is at most `max` bytes long.
    pub fn max_len(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.add(
                field,
                format!("must be at most {max} bytes (got {})", value.len()),
            );
        }
    }

    /// How many violations were recorded, listed or not.
    pub fn len(&self) -> usize {
        self.listed.len() + self.omitted
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a violation of exactly `field` is listed.
    pub fn has(&self, field: &str) -> bool {
        self.listed.iter().any(|v| v.field == field)
    }

    /// The violations to report: the listed ones, then, if any were left
    /// out, one on [`MORE_FIELD`] that counts them.
    pub fn iter(&self) -> impl Iterator<Item = FieldViolation> + '_ {
        self.listed.iter().cloned().chain(self.more())
    }

    /// The violation that counts those not listed, if any.
    fn more(&self) -> Option<FieldViolation> {
        (self.omitted > 0).then(|| FieldViolation {
            field: MORE_FIELD.into(),
            description: format!(
                "and {} more violations (only the first {} are listed)",
                self.omitted,
                self.listed.len()
            ),
        })
    }

    /// A one-line summary naming at most three invalid fields (it travels
    /// as `grpc-message`, a header too); the descriptions travel as
    /// `google.rpc.BadRequest` details.
    pub fn summary(&self) -> String {
        const NAMED: usize = 3;
        match self.listed.as_slice() {
            [one] if self.omitted == 0 => format!("{}: {}", one.field, one.description),
            listed => {
                let names: Vec<&str> = listed
                    .iter()
                    .take(NAMED)
                    .map(|v| v.field.as_str())
                    .collect();
                let more = if self.len() > names.len() {
                    ", ..."
                } else {
                    ""
                };
                format!("{} invalid fields ({}{more})", self.len(), names.join(", "))
            }
        }
    }

    /// `Ok(())` when nothing was recorded, else the violations.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl IntoIterator for Violations {
    type Item = FieldViolation;
    type IntoIter =
        std::iter::Chain<std::vec::IntoIter<FieldViolation>, std::option::IntoIter<FieldViolation>>;

    /// The same sequence as [`Violations::iter`].
    fn into_iter(self) -> Self::IntoIter {
        let more = self.more();
        self.listed.into_iter().chain(more)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// `s` with control and invisible formatting characters escaped
/// (`\u{1b}`), cut on a character boundary to at most `max` bytes (the
/// last three taken by "..." when cut).
fn bounded(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let piece = if super::text::is_unsafe(c) {
            c.escape_unicode().to_string()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > max {
            while out.len() + 3 > max {
                out.pop();
            }
            out.push_str("...");
            return out;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_violations_list_the_first_and_count_the_rest() {
        let mut v = Violations::new();
        for i in 0..1_000 {
            v.add(format!("signals[{i}].alert_name"), "is required");
        }
        assert_eq!(v.len(), 1_000);
        let all: Vec<FieldViolation> = v.iter().collect();
        assert_eq!(all.len(), MAX_LISTED + 1);
        assert_eq!(all[0].field, "signals[0].alert_name");
        assert_eq!(all[MAX_LISTED].field, MORE_FIELD);
        assert!(
            all[MAX_LISTED]
                .description
                .starts_with(&format!("and {} more", 1_000 - MAX_LISTED)),
            "{:?}",
            all[MAX_LISTED]
        );
        assert_eq!(v.clone().into_iter().collect::<Vec<_>>(), all);
        assert!(v.summary().starts_with("1000 invalid fields (signals[0]"));
        assert!(v.summary().len() < 200, "{}", v.summary());
    }

    #[test]
    fn long_text_is_cut_and_the_byte_budget_holds() {
        let mut v = Violations::new();
        for _ in 0..1_000 {
            v.add("é".repeat(500), "x".repeat(10_000));
        }
        let text: usize = v.iter().map(|f| f.field.len() + f.description.len()).sum();
        assert!(text <= BUDGET + 100, "{text}");
        for f in v.iter() {
            assert!(f.field.len() <= MAX_FIELD, "{}", f.field.len());
            assert!(f.description.len() <= MAX_DESCRIPTION);
        }
        assert!(v.iter().next().is_some_and(|f| f.field.ends_with("...")));
        assert_eq!(v.iter().last().map(|f| f.field), Some(MORE_FIELD.into()));
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut v = Violations::new();
        v.add("labels[\u{1b}[2J]", "bad\r\nvalue\u{202e}");
        let f = v.iter().next().unwrap();
        assert_eq!(f.field, "labels[\\u{1b}[2J]");
        assert_eq!(f.description, "bad\\u{d}\\u{a}value\\u{202e}");
        assert_eq!(v.summary(), format!("{}: {}", f.field, f.description));
    }

    #[test]
    fn few_violations_are_all_listed() {
        let mut v = Violations::new();
        assert!(v.clone().into_result().is_ok());
        v.add("a", "x");
        v.add("b", "y");
        assert_eq!(v.iter().count(), 2);
        assert_eq!(v.summary(), "2 invalid fields (a, b)");
        assert!(v.has("b") && !v.has(MORE_FIELD));
    }
}
