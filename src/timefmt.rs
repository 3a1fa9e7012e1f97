//! RFC 3339 timestamps in UTC, without a date crate: log lines and the session API's
//! envelope are the only places a wall-clock time is printed.

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
