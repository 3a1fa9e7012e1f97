//! Prometheus-style durations (`500ms`, `15s`, `1m`, `1h30m`), the notation every
//! Prometheus user already writes in `scrape_interval`. Parsed by hand because the
//! grammar is tiny and the error must say exactly what was wrong.

use std::time::Duration;

/// Units in the order Prometheus requires them (largest first), with their length in ms.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `text` as a duration such as `500ms`, `15s`, `1m` or `1h30m`.
///
/// The error is a sentence fragment meant to follow the key name.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint = "write a number and a unit, e.g. 500ms, 15s, 1m or 1h30m";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen: units must strictly decrease.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration: {hint}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        rest = &rest[digits..];
        // "ms" must be tried before "m", so match the longest unit first.
        let unit = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| rest.starts_with(name))
            .max_by_key(|(_, (name, _))| name.len());
        let Some((index, (name, unit_ms))) = unit else {
            return Err(format!("`{text}` has no unit after {number}: {hint}"));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(format!(
                "`{text}` repeats a unit or lists them out of order (largest first, e.g. 1h30m)"
            ));
        }
        last_unit = Some(index);
        total_ms = number
            .checked_mul(*unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = &rest[name.len()..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way the config writes it (`15s`, `500ms`, `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, len) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if rest >= len {
            out.push_str(&format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prometheus_notation() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration(" 2d "), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_with_a_reason() {
        for (input, fragment) in [
            ("", "empty"),
            ("15", "no unit"),
            ("s", "not a duration"),
            ("1.5s", "no unit after 1"),
            ("10x", "no unit"),
            ("1s1m", "out of order"),
            ("1m1m", "repeats"),
            ("-1s", "not a duration"),
            ("99999999999999999999s", "too large"),
            ("9999999999999999y", "too large"),
        ] {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains(fragment), "{input:?}: {err}");
        }
    }
}
