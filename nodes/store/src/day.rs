//! UTC days, `YYYY-MM-DD`: the one parser and formatter for the day folders of the report's
//! media, the daily report, the dashboard's `?day=` filters and `loupe dataset --since`.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// A text that is not a calendar day `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date: expected YYYY-MM-DD (UTC), e.g. 2026-11-01")]
pub struct DayError(pub String);

/// The UTC day (`YYYY-MM-DD`) of a Unix time in milliseconds (times before 1970 are its first day).
pub fn day_of(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339(time).to_string()[..10].to_string()
}

/// The start of the UTC day `YYYY-MM-DD`, Unix epoch milliseconds. Strict: four-digit year,
/// two-digit month and day, a day that exists (2024-02-29 yes, 2025-02-29 no).
pub fn start_ms(text: &str) -> Result<i64, DayError> {
    let bad = || DayError(text.to_string());
    let b = text.as_bytes();
    if !is_day(text) {
        return Err(bad());
    }
    let number = |r: std::ops::Range<usize>| -> i64 {
        b[r].iter().fold(0, |n, d| n * 10 + i64::from(d - b'0'))
    };
    let (y, m, d) = (number(0..4), number(5..7), number(8..10));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if d < 1 || d > days_in_month {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d) * DAY_MS)
}

/// Whether `name` has the shape `YYYY-MM-DD` (digits and two dashes; not whether the day exists).
pub fn is_day(name: &str) -> bool {
    name.len() == 10
        && name.bytes().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_midnights_and_bad_dates_are_refused() {
        assert_eq!(start_ms("1970-01-01").unwrap(), 0);
        assert_eq!(start_ms("1970-01-02").unwrap(), DAY_MS);
        assert_eq!(start_ms("2026-11-01").unwrap(), 1_793_491_200_000);
        assert_eq!(start_ms("2024-02-29").unwrap(), 1_709_164_800_000);
        for bad in [
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-11-31",
            "2026-11-00",
            "2026-1-01",
            "26-11-01",
            "2026/11/01",
            "yesterday",
            "2026-11-0x",
            "+026-11-01",
            "2026-11-01 ",
            "",
        ] {
            assert_eq!(start_ms(bad), Err(DayError(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn formatting_and_parsing_agree() {
        assert_eq!(day_of(0), "1970-01-01");
        for day in ["1999-12-31", "2024-02-29", "2026-12-08", "2100-03-01"] {
            let start = start_ms(day).unwrap();
            assert_eq!(day_of(start), day);
            assert_eq!(day_of(start + DAY_MS - 1), day);
        }
        assert!(is_day("2026-12-08"));
        assert!(!is_day("2026-12-8"));
        assert!(!is_day("2026_12_08"));
    }
}
