//! Field-level validation errors, collected so a caller learns every problem
//! of a request at once (they become `google.rpc.BadRequest` in `api/`).

use std::fmt;

/// One invalid field: its path in the request (`incident.signals[2].alert_name`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Every violation found in one request. Empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
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

    /// A one-line summary naming the invalid fields; the descriptions
    /// travel as `google.rpc.BadRequest` details.
    pub fn summary(&self) -> String {
        let fields: Vec<&str> = self.0.iter().map(|v| v.field.as_str()).collect();
        match fields.as_slice() {
            [one] => format!("{one}: {}", self.0[0].description),
            _ => format!("{} invalid fields ({})", fields.len(), fields.join(", ")),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the violations.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        f.write_str(&parts.join("; "))
    }
}
