//! The two text formats `/metrics` speaks, and content negotiation between them.
//!
//! prometheus-client writes only OpenMetrics. Prometheus asks for it, but curl,
//! `promtool check metrics` and older scrapers expect the classic text format 0.0.4.
//! The classic text is derived from the OpenMetrics text once per publish (never per
//! scrape) by [`openmetrics_to_classic`], which knows the only differences our output
//! can contain: counter metadata names, `unknown` types, `# UNIT` and `# EOF` lines.

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The format a scraper asked for in its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    /// OpenMetrics when `Accept` names it (as Prometheus does), classic text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Classic,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Classic => CLASSIC_CONTENT_TYPE,
        }
    }
}

/// Rewrites OpenMetrics text as written by prometheus-client into text format 0.0.4.
/// The text comes as the pieces it was assembled from, each of whole lines, so it is
/// never copied into one buffer first.
pub fn openmetrics_to_classic(openmetrics: &[&str]) -> String {
    let mut out = String::with_capacity(openmetrics.iter().map(|piece| piece.len()).sum());
    // The HELP line comes before TYPE, but a counter's HELP must be renamed once TYPE
    // tells us it is a counter, so it is held back one line.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.iter().flat_map(|piece| piece.lines()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, pending_help.take(), "");
            pending_help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            // OpenMetrics names a counter family without `_total`; 0.0.4 names it
            // after its sample, so promtool finds HELP and TYPE for `x_total`.
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            flush_help(&mut out, pending_help.take(), suffix);
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush_help(&mut out, pending_help.take(), "");
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, pending_help, "");
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>, suffix: &str) {
    if let Some((name, text)) = help {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push_str(suffix);
        out.push(' ');
        out.push_str(text);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_counters_units_and_eof() {
        let om = "\
# HELP dbsession_up 1 if up.
# TYPE dbsession_up gauge
dbsession_up{target=\"a\",tenant=\"t\"} 1
# HELP dbsession_collect_errors Failed cycles.
# TYPE dbsession_collect_errors counter
dbsession_collect_errors_total{target=\"a\",reason=\"auth\"} 2
# HELP x_seconds Something.
# TYPE x_seconds unknown
# UNIT x_seconds seconds
x_seconds 1.5
# EOF
";
        assert_eq!(
            openmetrics_to_classic(&[om]),
            "\
# HELP dbsession_up 1 if up.
# TYPE dbsession_up gauge
dbsession_up{target=\"a\",tenant=\"t\"} 1
# HELP dbsession_collect_errors_total Failed cycles.
# TYPE dbsession_collect_errors_total counter
dbsession_collect_errors_total{target=\"a\",reason=\"auth\"} 2
# HELP x_seconds Something.
# TYPE x_seconds untyped
x_seconds 1.5
"
        );
        // Cut at its lines, as an assembled exposition is, it reads the same.
        let (head, tail) = om.split_at(om.find("dbsession_collect_errors_total").unwrap());
        assert_eq!(
            openmetrics_to_classic(&[head, tail]),
            openmetrics_to_classic(&[om])
        );
    }

    #[test]
    fn negotiates_like_prometheus() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(Format::negotiate(None), Format::Classic);
    }
}
