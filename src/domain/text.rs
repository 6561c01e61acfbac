//! Text that reaches a terminal or a person. Free text from callers
//! (actors, titles, notes, alert labels, command output) is printed by the
//! CLI, logged and shown in dashboards, so characters that steer a terminal
//! or hide what is shown must not pass through: C0 and C1 controls (ESC
//! starts ANSI sequences, CR overwrites a line, LF forges one), bidi
//! overrides and isolates (U+202A–U+202E, U+2066–U+2069, U+061C, U+200E/F)
//! that reorder text ("Trojan Source"), zero-width and other invisible
//! format characters (U+200B–U+200D, U+2060–U+2064, U+FEFF) that make two
//! different values look the same, and the Unicode line and paragraph
//! separators (U+2028, U+2029).
//!
//! Two rules, chosen per field (README, "Text fields"):
//! - a **line** (an identifier or a one-line field: actor, title, alert
//!   name, fingerprint, URL, label and annotation keys) containing any of
//!   them is refused with a field violation: silently changing a name
//!   would make it match something else;
//! - **prose** (several lines: note, reason, command output, label and
//!   annotation values) keeps `\n` and `\t` and loses the rest, because
//!   refusing a whole alert batch or an execution report over a stray
//!   colour code would lose more than it protects.

use super::validation::Violations;
use std::collections::BTreeMap;

/// Whether `c` must not appear in a line (see the module doc).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// The first unsafe character of `s` and its byte offset, if any.
fn first_unsafe(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|(_, c)| is_unsafe(*c))
}

/// Records a violation of `field` when the line `value` holds an unsafe
/// character, naming the character and where it is.
pub fn line(v: &mut Violations, field: &str, value: &str) {
    if let Some((at, c)) = first_unsafe(value) {
        v.add(
            field,
            format!(
                "must not contain control or invisible formatting characters (U+{:04X} at byte {at})",
                c as u32
            ),
        );
    }
}

/// `s` without unsafe characters other than `\n` and `\t`. Borrowed when
/// nothing had to go, the common case.
pub fn prose(s: &str) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| !is_unsafe(c) || c == '\n' || c == '\t';
    if s.chars().all(keep) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.chars().filter(|c| keep(*c)).collect())
    }
}

/// Applies [`prose`] to a `String` in place.
pub fn clean(s: &mut String) {
    if let std::borrow::Cow::Owned(o) = prose(s) {
        *s = o;
    }
}

/// A label or annotation map: keys are lines (refused, reported as
/// `field[key]` with the key escaped), values are prose (cleaned).
pub fn map(v: &mut Violations, field: &str, m: &mut BTreeMap<String, String>) {
    for k in m.keys() {
        if first_unsafe(k).is_some() {
            let shown: String = k.chars().take(32).collect();
            line(v, &format!("{field}[{shown}]"), k);
        }
    }
    for value in m.values_mut() {
        clean(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_refuse_controls_bidi_and_invisibles() {
        for bad in [
            "al\u{1b}[31mice",
            "a\rb",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{9b}b",
            "admin\u{202e}nimda",
            "a\u{2066}b",
            "a\u{200b}b",
            "\u{feff}a",
            "a\u{2028}b",
        ] {
            let mut v = Violations::new();
            line(&mut v, "actor", bad);
            assert_eq!(v.len(), 1, "{bad:?}");
        }
        let mut v = Violations::new();
        line(&mut v, "actor", "Zoë O'Brien — SRE 🚒");
        assert!(v.is_empty());
        line(&mut v, "actor", "x\u{1b}");
        assert!(
            v.iter()
                .next()
                .is_some_and(|f| f.description.contains("U+001B at byte 1")),
            "{v}"
        );
    }

    #[test]
    fn prose_keeps_newlines_and_tabs_only() {
        assert!(matches!(prose("ok\n\tfine"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            prose("\u{1b}[2Jred\r\nline\u{202e}two\u{0}\t."),
            "[2Jred\nlinetwo\t."
        );
    }

    #[test]
    fn maps_refuse_bad_keys_and_clean_values() {
        let mut m: BTreeMap<String, String> = [
            ("ok".to_string(), "a\u{1b}b\nc".to_string()),
            ("k\u{7}".to_string(), "v".to_string()),
        ]
        .into();
        let mut v = Violations::new();
        map(&mut v, "labels", &mut m);
        assert_eq!(m["ok"], "ab\nc");
        assert_eq!(
            v.iter().next().map(|f| f.field),
            Some("labels[k\\u{7}]".to_string())
        );
    }

    proptest::proptest! {
        #[test]
        fn prose_never_leaves_an_unsafe_character(s in "\\PC*|[\\x00-\\x1f\\u{202a}-\\u{202e}a]{0,40}") {
            proptest::prop_assert!(prose(&s).chars().all(|c| !is_unsafe(c) || c == '\n' || c == '\t'));
        }
    }
}
