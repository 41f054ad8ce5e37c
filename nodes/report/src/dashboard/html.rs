//! HTML building blocks of the dashboard's pages: escaping, the page frame with its inline
//! style sheet, times, and SVG bar charts (no script or style is ever loaded from elsewhere).

use std::fmt::Write as _;

use super::identity::Identity;
use super::users::Role;

/// Text escaped for HTML element content and quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value for a URL query (`application/x-www-form-urlencoded`).
pub(super) fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A UTC time, `2026-11-21 13:05:02`.
pub(super) fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

/// Which page a frame is for (its tab is highlighted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tab {
    Inspections,
    Coils,
    Daily,
    Upload,
    /// The admin's users page (in the navigation of admins only).
    Admin,
    /// A page outside the navigation (the login page).
    None,
}

/// A whole page: `title`, the navigation (with who is logged in and a logout button; none
/// without `who`), `body`, and `script` (inline JavaScript). A logged-in user's CSRF token is
/// in `<meta name="csrf-token">` for the scripts.
pub(super) fn page(
    site: &str,
    title: &str,
    tab: Tab,
    body: &str,
    script: &str,
    who: Option<&Identity>,
) -> String {
    let mut tabs = vec![
        (Tab::Inspections, "/", "Inspections"),
        (Tab::Coils, "/coils", "Coils"),
        (Tab::Daily, "/daily", "Daily report"),
        (Tab::Upload, "/upload", "Check an image"),
    ];
    if who.is_some_and(|w| w.role >= Role::Admin) {
        tabs.push((Tab::Admin, "/admin/users", "Users"));
    }
    let nav = match who {
        Some(_) => tabs
            .iter()
            .map(|(t, href, name)| {
                let class = if *t == tab { " class=\"active\"" } else { "" };
                format!("<a href=\"{href}\"{class}>{name}</a>")
            })
            .collect::<Vec<_>>()
            .join(""),
        None => String::new(),
    };
    let (user, meta) = match who {
        Some(w) if w.logged_in() => (
            format!(
                "<span class=\"user\"><span id=\"user\">{name}</span> · <span id=\"role\">{role}</span>\
                 <form method=\"post\" action=\"/logout\" class=\"logout\">{csrf}\
                 <button type=\"submit\" id=\"logout\" class=\"secondary\">Log out</button></form></span>",
                name = esc(&w.name),
                role = w.role,
                csrf = w
                    .csrf
                    .as_deref()
                    .map(|t| format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(t)))
                    .unwrap_or_default()
            ),
            w.csrf
                .as_deref()
                .map(|t| format!("<meta name=\"csrf-token\" content=\"{}\">", esc(t)))
                .unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{meta}\
         <title>{title} · {site}</title><style>{STYLE}</style></head>\
         <body><header><span class=\"brand\">{site}</span><nav>{nav}</nav>{user}</header>\
         <main>{body}</main><script>{script}</script></body></html>",
        title = esc(title),
        site = esc(site),
    )
}

const STYLE: &str = "
:root{--fg:#1d232a;--muted:#5b6670;--line:#d7dde2;--bg:#f5f7f8;--bad:#b3261e;--ok:#1e7a3c;--warn:#9a6200;--accent:#0b5cad}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:24px;align-items:center;background:#17212b;color:#fff;padding:10px 20px}
.brand{font-weight:700;letter-spacing:.02em}nav a{color:#c9d4de;text-decoration:none;margin-right:16px}nav a.active,nav a:hover{color:#fff;border-bottom:2px solid #fff}
main{padding:16px 20px;max-width:1400px}h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%}th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef2f5;font-weight:600}tr.disagree td{background:#fff7e6}tr.new td{animation:flash 2s}
@keyframes flash{from{background:#dff0ff}to{background:transparent}}
.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:var(--muted)}
.figures{display:flex;gap:1.5em;list-style:none;padding:0}.figures b{font-size:1.3em}
.v-bad{color:var(--bad);font-weight:600}.v-ok{color:var(--ok)}.v-other{color:var(--warn)}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin-bottom:12px;background:#fff;padding:10px;border:1px solid var(--line)}
label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:2px}label.inline{flex-direction:row;align-items:center;gap:6px}
input,select,textarea,button{font:inherit;padding:4px 6px}button{cursor:pointer;background:var(--accent);color:#fff;border:0;border-radius:3px;padding:5px 12px}
button.secondary{background:#5b6670}.status{font-size:12px;color:var(--muted)}
.images{display:flex;gap:16px;flex-wrap:wrap}.images figure{margin:0;background:#fff;border:1px solid var(--line);padding:8px}
.images img{max-width:460px;width:100%;image-rendering:pixelated;display:block}figcaption{font-size:12px;color:var(--muted);margin-top:4px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:16px}.card{background:#fff;border:1px solid var(--line);padding:10px 12px}
.bar{height:10px;background:var(--accent);display:inline-block;vertical-align:middle}
.user{margin-left:auto;color:#c9d4de;display:flex;gap:8px;align-items:center}form.logout{display:inline;margin:0}
form.login{max-width:320px;display:flex;flex-direction:column;gap:8px}
.error{color:var(--bad)}svg.chart{background:#fff;border:1px solid var(--line);max-width:100%}
";

/// A grouped bar chart: one group per label, one bar per series (`(name, colour)`).
pub(super) fn bar_chart(
    title: &str,
    series: &[(&str, &str)],
    groups: &[(String, Vec<f64>)],
    unit: &str,
) -> String {
    let (width, height, left, bottom, top) = (760.0, 260.0, 48.0, 44.0, 28.0);
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    // Whole-number ticks for counts: the top of the axis is a multiple of 4.
    let max = if unit == "%" {
        max.max(1.0)
    } else {
        ((max / 4.0).ceil() * 4.0).max(4.0)
    };
    let plot_h = height - bottom - top;
    let slot = (width - left - 10.0) / groups.len().max(1) as f64;
    let bar = (slot * 0.8 / series.len().max(1) as f64).min(40.0);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\">\
         <text x=\"{left}\" y=\"16\" font-size=\"13\" font-weight=\"600\">{t}</text>",
        t = esc(title)
    );
    for i in 0..=4 {
        let value = max * f64::from(i) / 4.0;
        let y = top + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e8ec\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            width - 10.0,
            left - 4.0,
            y + 3.0,
            format_value(value, unit)
        );
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let x0 = left + slot * g as f64 + (slot - bar * values.len() as f64) / 2.0;
        for (s, value) in values.iter().enumerate() {
            let h = plot_h * value / max;
            let colour = series.get(s).map_or("#888", |(_, c)| c);
            let name = series.get(s).map_or("", |(n, _)| n);
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\">\
                 <title>{} {}: {}</title></rect>",
                x0 + bar * s as f64,
                top + plot_h - h,
                esc(label),
                esc(name),
                format_value(*value, unit)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            x0 + bar * values.len() as f64 / 2.0,
            height - bottom + 14.0,
            esc(label)
        );
    }
    for (s, (name, colour)) in series.iter().enumerate() {
        let x = left + 160.0 * s as f64;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            height - 16.0,
            x + 14.0,
            height - 7.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn format_value(value: f64, unit: &str) -> String {
    if unit == "%" {
        format!("{value:.0}%")
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_attributes_cannot_become_markup() {
        assert_eq!(
            esc("<img src=x onerror=\"a\">&'"),
            "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;"
        );
        assert_eq!(url_encode("L 1&x=2"), "L%201%26x%3D2");
        assert_eq!(time(86_400_000 + 61_000), "1970-01-02 00:01:01");
        let svg = bar_chart("t<", &[("a", "#000")], &[("d".into(), vec![2.0])], "");
        assert!(svg.starts_with("<svg") && svg.contains("t&lt;") && svg.ends_with("</svg>"));
    }
}
