//! The MQTT `topic` setting: a template with `{line}`, `{verdict}` and `{product_id}`
//! placeholders, parsed once (settings validate with it) and rendered per notice.

use super::attempt::Prepared;

/// A parsed `topic` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Line,
    Verdict,
    ProductId,
}

impl TopicTemplate {
    /// Parses a topic with `{line}`, `{verdict}`, `{product_id}` placeholders.
    pub(crate) fn parse(template: &str) -> Result<Self, String> {
        if template.is_empty() {
            return Err("must not be empty".to_string());
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return Err(format!(
                                    "`{template}`: `{{{name}` is not closed (write `{{{{` for a brace)"
                                ));
                            }
                        }
                    }
                    let part = match name.as_str() {
                        "line" => Part::Line,
                        "verdict" => Part::Verdict,
                        "product_id" => Part::ProductId,
                        other => {
                            return Err(format!(
                                "`{template}`: unknown placeholder `{{{other}}}` (use `{{line}}`, \
                                 `{{verdict}}` or `{{product_id}}`)"
                            ));
                        }
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                }
                '}' => {
                    return Err(format!(
                        "`{template}`: lone `}}` (write `}}}}` for a brace)"
                    ));
                }
                '+' | '#' => {
                    return Err(format!(
                        "`{template}`: wildcards (`+`, `#`) cannot be published to"
                    ));
                }
                '\0' => return Err("must not contain NUL".to_string()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(TopicTemplate { parts })
    }

    /// The topic of one notice.
    pub(crate) fn render(&self, msg: &Prepared) -> String {
        let mut topic = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Text(t) => {
                    topic.push_str(t);
                    continue;
                }
                Part::Line => &msg.line,
                Part::Verdict => &msg.verdict,
                Part::ProductId => &msg.product_id,
            };
            if value.is_empty() {
                topic.push_str("unknown");
            } else {
                topic.extend(value.chars().map(|c| match c {
                    '/' | '+' | '#' | '\0' => '_',
                    c => c,
                }));
            }
        }
        topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(line: &str) -> Prepared {
        Prepared {
            id: "1".into(),
            body: Bytes::new(),
            line: line.into(),
            verdict: "defective".into(),
            product_id: "P/1".into(),
        }
    }

    #[test]
    fn topics() {
        let t = TopicTemplate::parse("loupe/{line}/{verdict}/{{x}}/{product_id}").unwrap();
        assert_eq!(t.render(&msg("line-3")), "loupe/line-3/defective/{x}/P_1");
        assert_eq!(t.render(&msg("")), "loupe/unknown/defective/{x}/P_1");
        assert_eq!(t.render(&msg("a+#b")), "loupe/a__b/defective/{x}/P_1");
        assert!(TopicTemplate::parse("").is_err());
        assert!(
            TopicTemplate::parse("a/{camera}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            TopicTemplate::parse("a/{line")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(TopicTemplate::parse("a/}").unwrap_err().contains("lone"));
        assert!(
            TopicTemplate::parse("a/#")
                .unwrap_err()
                .contains("wildcards")
        );
    }
}
