//! The landing page at `/`: version, every target with its state, its sessions now
//! (all, active, waiting for a lock), the last hour of its active sessions from the
//! session history, and links.

use super::AppState;
use crate::status::{TargetStatus, TenantStatus};
use axum::extract::State;
use axum::response::Html;
use std::fmt::Write;
use std::time::SystemTime;

pub async fn page(State(state): State<std::sync::Arc<AppState>>) -> Html<String> {
    let published = state.current();
    let sparklines = state
        .session_api
        .sparklines(
            published
                .targets
                .iter()
                .map(|t| {
                    (
                        t.status.name.clone(),
                        t.status.tenants.keys().cloned().collect(),
                    )
                })
                .collect(),
        )
        .await;
    let mut rows = String::new();
    for target in &published.targets {
        let status = &target.status;
        let tenants = state
            .session_api
            .served_tenants(&status.name, status.tenants.keys());
        let line = match (&sparklines, state.session_api.records_history()) {
            (Some(lines), _) => Spark::Line(lines.get(&status.name).map_or(&[][..], Vec::as_slice)),
            (None, true) => Spark::NotYet,
            (None, false) => Spark::Off,
        };
        row(&mut rows, status, tenants.as_deref(), line);
    }
    let path = escape(&state.telemetry_path);
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>session_exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.down{{color:#b00}}.up{{color:#070}}.muted{{color:#555}}\
td.num{{text-align:right;font-variant-numeric:tabular-nums}}</style>\
</head><body><h1>session_exporter</h1>\
<p>Version {version} (revision {revision}). Prometheus exporter for database session metrics.</p>\
<ul><li><a href=\"{path}\">Metrics</a> (one target: <code>/probe?target=NAME</code>)</li><li><a href=\"/-/healthy\">Health</a></li>\
<li><a href=\"/-/ready\">Readiness</a></li></ul>\
<h2>Targets</h2><table><tr><th>target</th><th>kind</th><th>state</th><th>tenants</th>\
<th>sessions</th><th>active</th><th>waiting</th><th>active, last hour</th>\
<th>last success</th><th>last error</th><th>sessions page</th></tr>{rows}</table></body></html>\n",
        version = crate::VERSION,
        revision = env!("SESSION_EXPORTER_REVISION"),
    ))
}

/// What the landing page shows of a target's last hour.
enum Spark<'a> {
    /// Its active sessions, a minute a step.
    Line(&'a [Option<f64>]),
    /// Recorded, but not read yet (or the store could not be read: the log says).
    NotYet,
    /// Nothing is recorded (no `history:`).
    Off,
}

/// One target; `tenants`, those the session API serves, each linked to its
/// sessions page; `line`, its active sessions over the last hour.
fn row(out: &mut String, target: &TargetStatus, tenants: Option<&[String]>, line: Spark<'_>) {
    let state = match (target.tried, target.is_up()) {
        (false, _) => "<td>pending</td>".to_string(),
        (true, true) => "<td class=\"up\">up</td>".to_string(),
        (true, false) => format!(
            "<td class=\"down\">down ({})</td>",
            target.last_error.as_ref().map_or("", |e| e.reason.as_str())
        ),
    };
    let last_success = target.last_success.map_or("never".to_string(), |t| {
        let ago = SystemTime::now().duration_since(t).unwrap_or_default();
        format!("{:.1}s ago", ago.as_secs_f64())
    });
    let error = target
        .last_error
        .as_ref()
        .map_or(String::new(), |e| escape(&e.message));
    let links = match tenants {
        None => "<span class=\"muted\">session API off</span>".to_string(),
        Some(tenants) => tenants
            .iter()
            .map(|tenant| {
                let query: String =
                    percent_encoding::utf8_percent_encode(tenant, QUERY_VALUE).collect();
                format!(
                    "<a href=\"/sessions?tenant={}\">{}</a>",
                    escape(&query),
                    escape(tenant)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    // Now: the sum over the tenants the last cycle collected.
    let (mut sessions, mut active, mut waiting, mut up) = (0, 0, 0, false);
    for tenant in target.tenants.values() {
        if let TenantStatus::Up(stats) = tenant {
            up = true;
            sessions += stats.sessions;
            active += stats.active_sessions;
            waiting += stats.lock_waiting_sessions;
        }
    }
    let now = match up {
        true => format!(
            "<td class=\"num\">{sessions}</td><td class=\"num\">{active}</td><td class=\"num\">{waiting}</td>"
        ),
        false => "<td></td><td></td><td></td>".to_string(),
    };
    let spark = match line {
        Spark::Line(line) => sparkline(line),
        Spark::NotYet => "<span class=\"muted\">not read yet</span>".to_string(),
        Spark::Off => "<span class=\"muted\">no history recorded</span>".to_string(),
    };
    let _ = write!(
        out,
        "<tr><td>{}</td><td>{}</td>{state}<td>{}</td>{now}<td>{spark}</td><td>{last_success}</td>\
         <td>{error}</td><td>{links}</td></tr>",
        escape(&target.name),
        target.kind,
        target.tenants.len(),
    );
}

/// An hour of active sessions as a small SVG: a line per run of steps with a
/// recorded cycle (a gap where nothing was recorded; a dot for a run of one),
/// scaled to its own peak, which its label says.
fn sparkline(line: &[Option<f64>]) -> String {
    const WIDTH: f64 = 120.0;
    const HEIGHT: f64 = 24.0;
    let peak = line.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let scale = if peak > 0.0 {
        (HEIGHT - 2.0) / peak
    } else {
        0.0
    };
    let dx = WIDTH / line.len().saturating_sub(1).max(1) as f64;
    let point = |i: usize, v: f64| (i as f64 * dx, HEIGHT - 1.0 - v * scale);
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous = None;
    for (i, value) in line.iter().enumerate() {
        if let Some(v) = value {
            if previous.is_none() {
                runs.push(Vec::new());
            }
            runs.last_mut()
                .into_iter()
                .for_each(|run| run.push(point(i, *v)));
        }
        previous = *value;
    }
    let mut svg = format!(
        "<svg class=\"spark\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"active sessions over the last hour: at most {peak:.1} in a minute, on average\">"
    );
    for run in runs {
        match run.as_slice() {
            [(x, y)] => {
                let _ = write!(
                    svg,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"1.5\" fill=\"#1f4e79\"/>"
                );
            }
            points => {
                let points: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = write!(
                    svg,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f4e79\" stroke-width=\"1.5\"/>",
                    points.join(" ")
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// What a query value keeps as it is: RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// HTML-escapes text from the config or from a database error.
fn escape(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::sparkline;

    /// A run of recorded steps is a line, a gap splits it, a lone step is a dot,
    /// and the peak is the top of the box.
    #[test]
    fn a_sparkline_breaks_where_nothing_was_recorded() {
        let svg = sparkline(&[Some(0.0), Some(2.0), None, Some(1.0), None]);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert!(svg.contains(r#"points="0.0,23.0 30.0,1.0""#), "{svg}");
        assert!(svg.contains(r#"<circle cx="90.0" cy="12.0""#), "{svg}");
        assert!(svg.contains("at most 2.0"), "{svg}");
        let empty = sparkline(&[None, None]);
        assert!(
            !empty.contains("<polyline") && !empty.contains("<circle"),
            "{empty}"
        );
        let flat = sparkline(&[Some(0.0), Some(0.0)]);
        assert!(flat.contains(r#"points="0.0,23.0 120.0,23.0""#), "{flat}");
    }
}
