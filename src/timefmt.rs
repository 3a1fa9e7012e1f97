//! RFC 3339 timestamps in UTC, without a date crate: log lines and the session API's
//! envelope print them, and the session history's endpoints read them.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as RFC 3339 in UTC (`Z`) with `digits` fractional digits (0 to 9).
/// Times before 1970 print as 1970-01-01.
pub fn rfc3339(time: SystemTime, digits: u32) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let digits = digits.min(9);
    if digits > 0 {
        let fraction = since.subsec_nanos() / 10u32.pow(9 - digits);
        out.push_str(&format!(".{fraction:0width$}", width = digits as usize));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 date and time (`2026-12-07T03:12:00Z`, with a fraction of a
/// second and an offset such as `+08:00` allowed; `T` may be a space or `t`) into Unix
/// milliseconds. None for anything else, or a date before 1970.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month) || !(1..=days_in_month).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let fraction = &text[i + 1..i + 1 + digits.min(3)];
        millis = fraction.parse::<i64>().ok()? * 10i64.pow(3 - digits.min(3) as u32);
        i += 1 + digits;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && b[i + 3] == b':' => {
            let (hours, minutes) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    (seconds >= 0).then_some(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_reads_back_what_it_writes_and_offsets() {
        for (secs, nanos) in [
            (0, 0),
            (951_782_400, 5_000_000),
            (1_795_000_000, 123_000_000),
        ] {
            let text = rfc3339(at(secs, nanos), 3);
            assert_eq!(
                parse_rfc3339_millis(&text),
                Some(secs as i64 * 1000 + nanos as i64 / 1_000_000),
                "{text}"
            );
        }
        assert_eq!(
            parse_rfc3339_millis("2026-11-18T19:06:40+08:00"),
            parse_rfc3339_millis("2026-11-18T11:06:40Z")
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-18 11:06:40.5z"),
            Some(1_795_000_000_500)
        );
        for bad in [
            "",
            "2026-11-18",
            "2026-11-18T11:06:40",
            "2026-13-18T11:06:40Z",
            "2026-11-18T11:06:40+0800",
            "2026-11-18T11:06:40.Z",
            "1969-12-31T23:59:59Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-18T11:06:40+99:99",
            "２０２６-11-18T11:06:40Z",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn civil_dates_and_fractions() {
        assert_eq!(rfc3339(at(0, 0), 3), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(at(951_782_400, 5_000_000), 3),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(
            rfc3339(at(1_795_000_000, 123_456_789), 3),
            "2026-11-18T11:06:40.123Z"
        );
        assert_eq!(
            rfc3339(at(1_795_000_000, 123_456_789), 9),
            "2026-11-18T11:06:40.123456789Z"
        );
        assert_eq!(rfc3339(at(1_795_000_000, 7), 0), "2026-11-18T11:06:40Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5), 3),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
