//! Log output in the two formats Prometheus exporters use: logfmt (the default, like
//! `ts=… level=info msg="…" key=value`) and JSON.
//!
//! logfmt is written by a small formatter of ours: the format is a handful of quoting
//! rules, and owning them keeps the output identical to Go exporters' go-kit logs.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn level(self) -> Level {
        match self {
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Info => Level::INFO,
            LogLevel::Warn => Level::WARN,
            LogLevel::Error => Level::ERROR,
        }
    }
}

/// Installs the global subscriber, writing to stderr. Only this crate's events at
/// `level` and above are shown; dependencies speak at warn and above.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(Level::WARN)
        .with_target("session_exporter", level.level());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .event_format(Logfmt),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true)
                    // The module path would be a second "target" key beside the
                    // events' own `target` field (the configured target's name).
                    .with_target(false)
                    .with_current_span(false),
            )
            .try_init(),
    };
    // Only fails if a subscriber is already set (tests): keep that one.
    let _ = result;
}

/// Formats one event as a logfmt line.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(160);
        line.push_str("ts=");
        line.push_str(&rfc3339_now());
        line.push_str(" level=");
        line.push_str(&event.metadata().level().as_str().to_ascii_lowercase());
        let mut visitor = LogfmtFields {
            msg: String::new(),
            rest: String::new(),
        };
        event.record(&mut visitor);
        line.push_str(" msg=");
        push_value(&mut line, &visitor.msg);
        line.push_str(&visitor.rest);
        writeln!(writer, "{line}")
    }
}

struct LogfmtFields {
    msg: String,
    rest: String,
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            self.rest.push(' ');
            self.rest.push_str(field.name());
            self.rest.push('=');
            push_value(&mut self.rest, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Appends `value`, quoted and escaped when it has spaces, quotes, `=` or controls.
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The current UTC time as RFC 3339 with milliseconds.
fn rfc3339_now() -> String {
    crate::timefmt::rfc3339(std::time::SystemTime::now(), 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        let mut out = String::new();
        push_value(&mut out, "plain");
        out.push(' ');
        push_value(&mut out, "has space \"q\" a=b\nnext");
        out.push(' ');
        push_value(&mut out, "");
        assert_eq!(out, r#"plain "has space \"q\" a=b\nnext" """#);
    }
}
