//! Loupe values as NiFi text: Expression Language literals and attribute references
//! (escaping `${`, `#{`, quotes), capture globs as the Java regexes NiFi matches file names
//! with, and durations and byte counts as NiFi time periods and data sizes.

use std::time::Duration;

use loupe_flow::model::DEFAULT_BACK_PRESSURE_BYTES;

/// A duration as NiFi writes time periods: `0 sec`, `250 ms`, `5 sec`, `10 mins`, `2 hours`,
/// `1 days`.
pub fn nifi_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 && !duration.is_zero() {
        millis = 1;
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis} ms");
    }
    let secs = millis / 1000;
    match secs {
        0 => "0 sec".to_string(),
        s if s.is_multiple_of(86_400) => format!("{} days", s / 86_400),
        s if s.is_multiple_of(3_600) => format!("{} hours", s / 3_600),
        s if s.is_multiple_of(60) => format!("{} mins", s / 60),
        s => format!("{s} sec"),
    }
}

/// A back-pressure size as a NiFi data size.
///
/// NiFi's units are binary (`1 MB` = 1 MiB); Loupe's `MB` is decimal. The exact byte count
/// is kept: written in the largest NiFi unit that divides it (`64 MiB` -> `64 MB`,
/// `64 MB` -> `62500 KB`), else in bytes. Loupe's default (1 GB, meant as NiFi's default) is NiFi's
/// `1 GB`.
pub fn back_pressure_size(bytes: u64) -> String {
    if bytes == DEFAULT_BACK_PRESSURE_BYTES {
        return "1 GB".to_string();
    }
    nifi_data_size(bytes)
}

/// A byte count as an exact NiFi data size (binary units).
pub fn nifi_data_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes > 0 && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} B")
}

/// A capture glob (`*`, `?`, `[set]`, `[!set]`, `\` escapes; see `loupe_capture::Glob`) as
/// the Java regular expression ListFile matches whole file names against.
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.next_if_eq(&'*').is_some() {}
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '\\' => {
                if let Some(escaped) = chars.next() {
                    push_literal(&mut out, escaped);
                }
            }
            '[' => {
                let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                out.push('[');
                if negated {
                    out.push('^');
                }
                let mut first = true;
                while let Some(c) = chars.next() {
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        c
                    };
                    push_literal(&mut out, lo);
                    let is_range = chars.peek() == Some(&'-') && {
                        let mut ahead = chars.clone();
                        ahead.next();
                        matches!(ahead.peek(), Some(&c) if c != ']')
                    };
                    if is_range {
                        chars.next();
                        out.push('-');
                        let hi = chars.next().unwrap_or(lo);
                        push_literal(&mut out, hi);
                    }
                }
                out.push(']');
            }
            c => push_literal(&mut out, c),
        }
    }
    out
}

/// One literal character in a Java regex: ASCII punctuation (but `_`) and space are escaped
/// (a backslash before a non-alphabetic character is always a literal in Java, inside a
/// class too).
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' {
        out.push('\\');
    }
    out.push(c);
}

/// A string literal of NiFi Expression Language: single quotes, `\` and `'` escaped.
pub(super) fn el_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An attribute name in Expression Language: bare when it is a plain name (`route`),
/// else quoted (`'x-loupe-relationship'`).
pub(super) fn el_attribute(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if plain {
        name.to_string()
    } else {
        el_string(name)
    }
}

/// A literal value for a property NiFi evaluates as Expression Language: `${` and `#{` are
/// escaped so they stay text.
pub(super) fn el_literal(text: &str) -> String {
    text.replace("${", "$${").replace("#{", "##{")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_nifi_units() {
        assert_eq!(nifi_duration(Duration::ZERO), "0 sec");
        assert_eq!(nifi_duration(Duration::from_millis(100)), "100 ms");
        assert_eq!(nifi_duration(Duration::from_micros(10)), "1 ms");
        assert_eq!(nifi_duration(Duration::from_secs(5)), "5 sec");
        assert_eq!(nifi_duration(Duration::from_secs(600)), "10 mins");
        assert_eq!(nifi_duration(Duration::from_secs(7200)), "2 hours");
        assert_eq!(nifi_duration(Duration::from_secs(86_400)), "1 days");
        assert_eq!(nifi_duration(Duration::from_millis(1500)), "1500 ms");
    }

    #[test]
    fn sizes_stay_exact_in_binary_units() {
        assert_eq!(back_pressure_size(DEFAULT_BACK_PRESSURE_BYTES), "1 GB");
        assert_eq!(back_pressure_size(64_000_000), "62500 KB");
        assert_eq!(back_pressure_size(1_000_001), "1000001 B");
        assert_eq!(back_pressure_size(64 << 20), "64 MB");
        assert_eq!(nifi_data_size(1 << 30), "1 GB");
        assert_eq!(nifi_data_size(1536), "1536 B");
        assert_eq!(nifi_data_size(2048), "2 KB");
        assert_eq!(nifi_data_size(0), "0 B");
    }

    #[test]
    fn globs_become_java_regexes() {
        assert_eq!(glob_to_regex("*.png"), ".*\\.png");
        assert_eq!(glob_to_regex("*"), ".*");
        assert_eq!(glob_to_regex("**a?"), ".*a.");
        assert_eq!(glob_to_regex("[!a-z]x"), "[^a-z]x");
        assert_eq!(glob_to_regex("[]a]"), "[\\]a]");
        assert_eq!(glob_to_regex("a\\*b c"), "a\\*b\\ c");
        assert_eq!(glob_to_regex("img_[0-9].jp*g"), "img_[0-9]\\.jp.*g");
    }

    #[test]
    fn expression_language_is_quoted() {
        assert_eq!(el_string("x-loupe-relationship"), "'x-loupe-relationship'");
        assert_eq!(el_string("it's"), "'it\\'s'");
        assert_eq!(el_literal("a${b}#{c}"), "a$${b}##{c}");
        assert_eq!(el_attribute("route"), "route");
        assert_eq!(el_attribute("segment.defect"), "segment.defect");
        assert_eq!(
            el_attribute("x-loupe-relationship"),
            "'x-loupe-relationship'"
        );
        assert_eq!(el_attribute("2x"), "'2x'");
    }
}
