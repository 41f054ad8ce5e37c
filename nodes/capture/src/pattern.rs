//! `metadata.filename_pattern`: a template such as `{product.id}_a{camera.angle}.*` compiled
//! to a regex whose named groups become attributes. A leaf: settings validate with it,
//! [`crate::metadata`] applies it.

use regex::Regex;

/// A `metadata.filename_pattern` that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `{` without its `}`.
    #[error("unclosed `{{` in `{0}`")]
    Unclosed(String),
    /// `{}` or a name with characters other than letters, digits, `.`, `_`, `-`.
    #[error("`{{{name}}}` in `{pattern}`: an attribute name is letters, digits, `.`, `_`, `-`")]
    BadName {
        /// The name as written.
        name: String,
        /// The whole pattern.
        pattern: String,
    },
    /// A `{name:REGEX}` whose regex is invalid.
    #[error("invalid regex in `{pattern}`: {message}")]
    Regex {
        /// The whole pattern.
        pattern: String,
        /// What the regex compiler said.
        message: String,
    },
    /// A trailing `\`.
    #[error("trailing `\\` in `{0}`")]
    TrailingEscape(String),
}

/// A compiled `metadata.filename_pattern` (see the setting for its syntax).
#[derive(Debug, Clone)]
pub struct FilenamePattern {
    regex: Regex,
    /// Attribute name of capture group `g{i}`.
    names: Vec<String>,
}

impl FilenamePattern {
    /// Compiles a template into an anchored regex with one group per `{attr}`.
    pub fn new(template: &str) -> Result<Self, PatternError> {
        let mut re = String::from("^");
        let mut names = Vec::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '\\' => {
                    let next = chars
                        .next()
                        .ok_or_else(|| PatternError::TrailingEscape(template.to_string()))?;
                    re.push_str(&regex::escape(&next.to_string()));
                }
                '{' => {
                    // The capture runs to the matching `}` (braces inside a regex nest).
                    let mut depth = 1;
                    let mut inner = String::new();
                    for c in chars.by_ref() {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        if depth == 0 {
                            break;
                        }
                        inner.push(c);
                    }
                    if depth != 0 {
                        return Err(PatternError::Unclosed(template.to_string()));
                    }
                    let (name, body) = match inner.split_once(':') {
                        Some((name, body)) => (name, body),
                        None => (inner.as_str(), ".+?"),
                    };
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                    if !valid {
                        return Err(PatternError::BadName {
                            name: inner.clone(),
                            pattern: template.to_string(),
                        });
                    }
                    re.push_str(&format!("(?P<g{}>{body})", names.len()));
                    names.push(name.to_string());
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| PatternError::Regex {
            pattern: template.to_string(),
            message: e.to_string(),
        })?;
        Ok(FilenamePattern { regex, names })
    }

    /// The attributes `name` gives, or nothing when it does not match.
    pub fn captures(&self, name: &str) -> Vec<(String, String)> {
        let Some(caps) = self.regex.captures(name) else {
            return Vec::new();
        };
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, attr)| {
                let value = caps.name(&format!("g{i}"))?;
                Some((attr.clone(), value.as_str().to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn pattern(t: &str) -> FilenamePattern {
        FilenamePattern::new(t).unwrap()
    }

    #[test]
    fn filename_templates() {
        let p = pattern("{product.id}_a{camera.angle}.*");
        assert_eq!(
            p.captures("p00042_a3.png"),
            [
                ("product.id".to_string(), "p00042".to_string()),
                ("camera.angle".to_string(), "3".to_string())
            ]
        );
        assert!(p.captures("other.png").is_empty());
        let p = pattern("{line}-{camera.id}-{product.id:[0-9]{4}}.jpg");
        let got: HashMap<_, _> = p.captures("L1-cam-2-0042.jpg").into_iter().collect();
        assert_eq!(got["line"], "L1");
        assert_eq!(got["camera.id"], "cam-2");
        assert_eq!(got["product.id"], "0042");
        assert!(pattern(r"a\*{x}").captures("a*1").len() == 1);
        assert!(matches!(
            FilenamePattern::new("{a"),
            Err(PatternError::Unclosed(_))
        ));
        assert!(matches!(
            FilenamePattern::new("{}"),
            Err(PatternError::BadName { .. })
        ));
        assert!(matches!(
            FilenamePattern::new("{a:(}"),
            Err(PatternError::Regex { .. })
        ));
    }
}
