//! The landing page at `/`: version, every target with its state, and links.

use super::AppState;
use crate::status::TargetStatus;
use axum::extract::State;
use axum::response::Html;
use std::fmt::Write;
use std::time::SystemTime;

pub async fn page(State(state): State<std::sync::Arc<AppState>>) -> Html<String> {
    let published = state.current();
    let mut rows = String::new();
    for target in &published.targets {
        let status = &target.status;
        let tenants = state
            .session_api
            .served_tenants(&status.name, status.tenants.keys());
        row(&mut rows, status, tenants.as_deref());
    }
    let path = escape(&state.telemetry_path);
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>session_exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.down{{color:#b00}}.up{{color:#070}}.muted{{color:#555}}</style>\
</head><body><h1>session_exporter</h1>\
<p>Version {version} (revision {revision}). Prometheus exporter for database session metrics.</p>\
<ul><li><a href=\"{path}\">Metrics</a> (one target: <code>/probe?target=NAME</code>)</li><li><a href=\"/-/healthy\">Health</a></li>\
<li><a href=\"/-/ready\">Readiness</a></li></ul>\
<h2>Targets</h2><table><tr><th>target</th><th>kind</th><th>state</th><th>tenants</th>\
<th>last success</th><th>last error</th><th>sessions page</th></tr>{rows}</table></body></html>\n",
        version = crate::VERSION,
        revision = env!("SESSION_EXPORTER_REVISION"),
    ))
}

/// One target; `tenants`, those the session API serves, each linked to its
/// sessions page.
fn row(out: &mut String, target: &TargetStatus, tenants: Option<&[String]>) {
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
    let _ = write!(
        out,
        "<tr><td>{}</td><td>{}</td>{state}<td>{}</td><td>{last_success}</td><td>{error}</td>\
         <td>{links}</td></tr>",
        escape(&target.name),
        target.kind,
        target.tenants.len(),
    );
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
