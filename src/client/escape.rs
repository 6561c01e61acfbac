//! Escaping of everything a client prints that came from the server. The
//! server refuses or strips terminal-steering characters in what it stores
//! (README, "Text"), but a client must not depend on that: a record stored
//! before those rules, another server, or a proxy could still hand it ESC
//! (ANSI sequences), CR (overwriting a line), bidi overrides (reordering
//! what is shown) or zero-width characters (two values that look alike).
//!
//! One function, [`escape`], in three styles; the CLI passes every byte it
//! writes through it (`cli/output.rs`, `cli/error.rs`, `cli/watch.rs`), and
//! table cells through [`Style::Line`].

use std::borrow::Cow;
use std::fmt::Write;

/// How an unsafe character is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Human text: `\n` and `\t` kept (multi-line values), the rest as
    /// `\u{1b}`.
    Terminal,
    /// One line (a table cell): `\n` and `\t` escaped too.
    Line,
    /// Serialized JSON: as `\u001b`, a JSON escape with the same meaning
    /// (outside strings JSON has only spaces and `\n`, which are kept).
    Json,
}

/// Whether `c` steers a terminal or hides what is shown: C0 and C1
/// controls and DEL, bidi marks, embeddings, overrides and isolates,
/// zero-width and invisible format characters, the line and paragraph
/// separators, the BOM, the soft hyphen.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` with every unsafe character escaped in `style`; borrowed when
/// there is none (the common case costs one scan).
pub(crate) fn escape(text: &str, style: Style) -> Cow<'_, str> {
    let keep = |c: char| style != Style::Line && (c == '\n' || c == '\t');
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_unsafe(c) || keep(c) {
            out.push(c);
            continue;
        }
        // Writing to a String cannot fail.
        let _ = match style {
            Style::Json => {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .try_for_each(|u| write!(out, "\\u{u:04x}"))
            }
            Style::Terminal | Style::Line => write!(out, "\\u{{{:x}}}", u32::from(c)),
        };
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_steering_is_escaped_and_lines_are_kept() {
        let hostile = "ok\x1b[2J\rfake\u{202E}txt.exe\u{200B}\nnext\tcol\u{7f}\u{9b}";
        assert_eq!(
            escape(hostile, Style::Terminal),
            "ok\\u{1b}[2J\\u{d}fake\\u{202e}txt.exe\\u{200b}\nnext\tcol\\u{7f}\\u{9b}"
        );
        assert_eq!(escape("a\nb\tc", Style::Line), "a\\u{a}b\\u{9}c");
        assert!(matches!(
            escape("plain ünïcode ✓", Style::Terminal),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_escapes_keep_the_document_valid_and_its_meaning() {
        let value = serde_json::json!({"title": "a\u{202E}b\u{85}c"});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape(&text, Style::Json);
        assert!(escaped.contains("a\\u202eb\\u0085c"), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
        assert!(!escaped.chars().any(|c| is_unsafe(c) && c != '\n'));
    }
}
