//! A small file-name glob: `*`, `?`, `[set]`, `[!set]` and `\` escapes.
//!
//! Written here rather than pulled in as a crate because file names are all it matches and
//! the whole matcher is a few dozen lines.

/// A glob pattern could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// A `[` without its `]`.
    #[error("unclosed `[` in `{0}`")]
    UnclosedClass(String),
    /// A trailing `\` with nothing to escape.
    #[error("trailing `\\` in `{0}`")]
    TrailingEscape(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// One literal character.
    Char(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled file-name glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Parses `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    // Consecutive stars mean the same as one; collapsing keeps matching linear.
                    if tokens.last() == Some(&Token::Star) {
                        continue;
                    }
                    Token::Star
                }
                '?' => Token::Any,
                '\\' => Token::Char(
                    chars
                        .next()
                        .ok_or_else(|| GlobError::TrailingEscape(pattern.to_string()))?,
                ),
                '[' => {
                    let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = chars
                            .next()
                            .ok_or_else(|| GlobError::UnclosedClass(pattern.to_string()))?;
                        // As in shells, a `]` right after `[` or `[!` is a literal member.
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let lo = if c == '\\' {
                            chars
                                .next()
                                .ok_or_else(|| GlobError::UnclosedClass(pattern.to_string()))?
                        } else {
                            c
                        };
                        let is_range = chars.peek() == Some(&'-') && {
                            let mut ahead = chars.clone();
                            ahead.next();
                            matches!(ahead.peek(), Some(&c) if c != ']')
                        };
                        if is_range {
                            chars.next();
                            let hi = chars
                                .next()
                                .ok_or_else(|| GlobError::UnclosedClass(pattern.to_string()))?;
                            ranges.push((lo, hi));
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Char(c),
            };
            tokens.push(token);
        }
        Ok(Glob { tokens })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Iterative matching with one backtrack point (the last `*`): linear for the usual
        // patterns, never exponential.
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(t) if t.matches_one(name[n]) => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        p = sp + 1;
                        n = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Star)
    }
}

impl Token {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", "a.jpg"));
        assert!(m("*", ""));
        assert!(m("*.jpg", "a.jpg"));
        assert!(!m("*.jpg", "a.jpeg"));
        assert!(m("img_??.png", "img_01.png"));
        assert!(!m("img_??.png", "img_1.png"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abbbc"));
        assert!(!m("a*b*c", "abcx"));
        assert!(m("**x", "yyx"));
        assert!(m("*.tar.gz", "a.b.tar.gz"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("*.[jJ][pP][gG]", "A.JPG"));
        assert!(m("cam[0-9].png", "cam7.png"));
        assert!(!m("cam[!0-9].png", "cam7.png"));
        assert!(m("cam[!0-9].png", "camx.png"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "a"));
        assert!(m("é?", "éa"));
    }

    #[test]
    fn bad_patterns() {
        assert!(matches!(Glob::new("[ab"), Err(GlobError::UnclosedClass(_))));
        assert!(matches!(
            Glob::new("ab\\"),
            Err(GlobError::TrailingEscape(_))
        ));
    }
}
