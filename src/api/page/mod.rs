//! The sessions page, `/sessions?tenant=NAME`: a tenant's sessions, why they pile
//! up and the means to end them, in a browser. Plain HTML, CSS and JavaScript
//! embedded in the binary (it works offline, and no build chain runs beside cargo's);
//! every figure on it comes from the session API, fetched by the page with the
//! credentials it was given: the page itself holds no data, so it is served to
//! anyone the web configuration lets in, and shows a sign-in form until the API
//! accepts it.
//!
//! Its responses forbid what a page of this kind never needs: inline script and
//! style, any origin but this one, and being framed (`frame-ancestors 'none'`).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// What a browser may do on the page: load its own script, style and icon, and
/// fetch from this origin. Nothing inline, nothing from elsewhere, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const HTML: &str = include_str!("sessions.html");
const SCRIPT: &str = include_str!("sessions.js");
const STYLE: &str = include_str!("sessions.css");
const ICON: &str = include_str!("icon.svg");
/// The timeline's chart: uPlot 1.6.32 (MIT, `vendor/uPlot.LICENSE`), its release's
/// `dist/uPlot.iife.min.js` and `dist/uPlot.min.css` as published, embedded like
/// the page's own files: 53 kB, no dependency, draws on a canvas, sets no HTML
/// from data, and needs no build step.
const CHART_SCRIPT: &str = include_str!("vendor/uPlot.iife.min.js");
const CHART_STYLE: &str = include_str!("vendor/uPlot.min.css");

/// `GET /sessions`.
pub async fn sessions() -> Response {
    asset(HTML, "text/html; charset=utf-8")
}

/// `GET /-/ui/sessions.js`.
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /-/ui/sessions.css`.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /-/ui/uPlot.js`.
pub async fn chart_script() -> Response {
    asset(CHART_SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /-/ui/uPlot.css`.
pub async fn chart_style() -> Response {
    asset(CHART_STYLE, "text/css; charset=utf-8")
}

/// `GET /-/ui/icon.svg`, which is also the favicon (a missing one is an error in
/// the browser's console).
pub async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // A new build's page must not meet an old script from a cache.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_loads_only_its_own_assets() {
        for attribute in [
            " onclick=",
            " onload=",
            " onerror=",
            " style=",
            "javascript:",
        ] {
            assert!(!HTML.contains(attribute), "{attribute} in the page");
        }
        assert!(!HTML.contains("<script>"), "an inline script");
        assert!(!HTML.contains("<style"), "an inline style");
        for source in ["http://", "https://", "//cdn"] {
            assert!(!HTML.contains(source), "{source} in the page");
            assert!(!SCRIPT.contains(source), "{source} in the script");
        }
        assert!(HTML.contains(r#"<script src="/-/ui/sessions.js" defer></script>"#));
        assert!(HTML.contains(r#"<script src="/-/ui/uPlot.js" defer></script>"#));
        // The chart sets no HTML either, and fetches nothing.
        for sink in [
            "innerHTML",
            "insertAdjacentHTML",
            "document.write",
            "fetch(",
        ] {
            assert!(!CHART_SCRIPT.contains(sink), "{sink} in the chart");
        }
        // Text from the database is set as text, never parsed as HTML.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "{sink} in the script");
        }
    }

    #[tokio::test]
    async fn every_asset_carries_the_policy() {
        for response in [
            sessions().await,
            script().await,
            style().await,
            chart_script().await,
            chart_style().await,
            icon().await,
        ] {
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    }
}
