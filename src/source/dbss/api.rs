//! DBSS's API contract, to the letter of its reference: the two paths, the request
//! body of the client session distribution, its answer (an array of
//! `ReportClientSessionNew`, any field possibly null), and the error body shared by
//! 400, 401, 403 and 500 (`error_code`, `error_msg`, `details`,
//! `encoded_authorization_message`).

use super::report::ClientEntry;
use crate::config::dbss::Dbss;
use crate::error::{ApiError, Reason};
use crate::secret::Secret;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

/// Upstream messages are cut to this in logs and metrics-free errors.
const MAX_MESSAGE_CHARS: usize = 300;

/// `POST /v1/{project_id}/audit/{instance_id}/statistics/session/db-client`.
pub fn client_sessions_path(settings: &Dbss) -> String {
    format!(
        "/v1/{}/audit/{}/statistics/session/db-client",
        settings.project_id, settings.instance_id
    )
}

/// `GET /v2/{project_id}/audit/{instance_id}/sqls/{id}`; `id` must pass [`valid_sql_id`].
pub fn sql_detail_path(settings: &Dbss, id: &str) -> String {
    format!(
        "/v2/{}/audit/{}/sqls/{id}",
        settings.project_id, settings.instance_id
    )
}

/// An SQL statement's record ID, as the SQL list returns it (e.g.
/// `J8Zcg5gBPj4d6CRtK3Y4`). It goes into a URL path: letters, digits, `-` and `_`
/// only, 1 to 128 of them, so nothing can escape the path.
pub fn valid_sql_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && crate::config::dbss::is_path_safe(id)
}

#[derive(Serialize)]
struct ClientSessionsRequest<'a> {
    /// Omitted when empty, as in the reference's example request (every database).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    db_id: &'a [String],
    time: Duration,
}

#[derive(Serialize)]
struct Duration {
    time_range: &'static str,
}

/// The request body: `{"db_id": [...], "time": {"time_range": "..."}}`.
pub fn client_sessions_body(settings: &Dbss) -> Vec<u8> {
    let request = ClientSessionsRequest {
        db_id: &settings.db_ids,
        time: Duration {
            time_range: settings.time_range.as_str(),
        },
    };
    // Strings and a static: serialization cannot fail.
    serde_json::to_vec(&request).unwrap_or_default()
}

/// `ReportClientSessionNew`.
#[derive(Deserialize)]
struct ReportClientSession {
    db_id: Option<String>,
    db_ip: Option<String>,
    db_name: Option<String>,
    session_num: Option<u64>,
}

/// Decodes a 200 answer. Entries whose `session_num` is null carry no count and are
/// left out; anything else off the contract (not an array, a negative count) is an
/// error that says what came.
pub fn decode_client_sessions(body: &[u8]) -> Result<(Vec<ClientEntry>, usize), String> {
    let entries: Vec<ReportClientSession> = serde_json::from_slice(body).map_err(|err| {
        format!(
            "the answer is not the documented array of ReportClientSessionNew: {err} (it began with `{}`)",
            clean(&String::from_utf8_lossy(&body[..body.len().min(80)]), 80)
        )
    })?;
    let sent = entries.len();
    let entries = entries
        .into_iter()
        .filter_map(|e| {
            Some(ClientEntry {
                session_num: e.session_num?,
                db_id: e.db_id,
                db_ip: e.db_ip,
                db_name: e.db_name,
            })
        })
        .collect::<Vec<_>>();
    let without_count = sent - entries.len();
    Ok((entries, without_count))
}

/// DBSS's error body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    error_code: Option<String>,
    error_msg: Option<String>,
    details: Option<Vec<ErrorDetail>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorDetail {
    error_code: Option<String>,
    error_msg: Option<String>,
}

/// The `error_code` and `error_msg` of an error answer, cleaned for a log line: at
/// most `MAX_MESSAGE_CHARS`, no control characters, and the token blanked should
/// the server echo it. A body that is not the documented JSON gives its first
/// characters as the message. The first of `details` stands in for missing fields.
pub fn decode_error(body: &[u8], token: Option<&Secret>) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(parsed) => {
            let detail = parsed
                .details
                .and_then(|d| d.into_iter().next())
                .unwrap_or_default();
            (
                parsed.error_code.or(detail.error_code).unwrap_or_default(),
                parsed.error_msg.or(detail.error_msg).unwrap_or_default(),
            )
        }
        None => (String::new(), String::from_utf8_lossy(body).into_owned()),
    };
    let redact = |text: String| match token.map(Secret::expose) {
        Some(token) if !token.is_empty() && text.contains(token) => {
            text.replace(token, "<redacted>")
        }
        _ => text,
    };
    ApiError {
        code: clean(&redact(code), 64),
        message: clean(&redact(message), MAX_MESSAGE_CHARS),
    }
}

/// The collection's failure reason for a non-200 answer.
pub fn reason_of(status: StatusCode) -> Reason {
    match status.as_u16() {
        401 => Reason::Auth,
        403 => Reason::Forbidden,
        400..=499 => Reason::BadRequest,
        500..=599 => Reason::Server,
        _ => Reason::Query,
    }
}

/// What the user can do about a non-200 answer.
pub fn hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "the token in token_file was refused: renew it (IAM tokens expire after 24 hours) and write the new one to the file",
        403 => "the token's user may not read this instance's reports: grant it DBSS access in this project, or check project_id and instance_id",
        404 => "no such resource: check endpoint, project_id and instance_id",
        400..=499 => "the request does not fit the API: check project_id, instance_id and db_ids",
        500..=599 => "DBSS failed on its side; the next cycle retries",
        _ => "an answer the DBSS API does not document",
    }
}

/// `text` without control characters, cut to `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dbss::{Endpoint, TimeRange};

    fn settings(db_ids: &[&str]) -> Dbss {
        Dbss {
            endpoint: Endpoint::parse("https://dbss.example.com").unwrap(),
            project_id: "0123456789abcdef0123456789abcdef".into(),
            instance_id: "fedcba9876543210fedcba9876543210".into(),
            token_file: "/dev/null".into(),
            db_ids: db_ids.iter().map(|s| s.to_string()).collect(),
            time_range: TimeRange::Hour,
            ca_file: None,
            insecure_skip_verify: false,
            connect_timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn paths_and_body_follow_the_reference() {
        let s = settings(&[]);
        assert_eq!(
            client_sessions_path(&s),
            "/v1/0123456789abcdef0123456789abcdef/audit/fedcba9876543210fedcba9876543210/statistics/session/db-client"
        );
        assert_eq!(
            sql_detail_path(&s, "J8Zcg5gBPj4d6CRtK3Y4"),
            "/v2/0123456789abcdef0123456789abcdef/audit/fedcba9876543210fedcba9876543210/sqls/J8Zcg5gBPj4d6CRtK3Y4"
        );
        assert_eq!(
            String::from_utf8(client_sessions_body(&s)).unwrap(),
            r#"{"time":{"time_range":"HOUR"}}"#
        );
        assert_eq!(
            String::from_utf8(client_sessions_body(&settings(&["a", "b"]))).unwrap(),
            r#"{"db_id":["a","b"],"time":{"time_range":"HOUR"}}"#
        );
    }

    #[test]
    fn the_documented_example_decodes_with_its_nulls() {
        let body = br#"[ {
  "db_id" : null,
  "db_ip" : "100.79.0.248",
  "session_num" : 16,
  "db_name" : null
}, {
  "db_id" : null,
  "db_ip" : "100.79.0.247",
  "session_num" : 13,
  "db_name" : null
} ]"#;
        let (entries, without_count) = decode_client_sessions(body).unwrap();
        assert_eq!(without_count, 0);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].db_ip.as_deref(), Some("100.79.0.248"));
        assert_eq!(entries[0].db_id, None);
        assert_eq!(entries[1].session_num, 13);
    }

    #[test]
    fn answers_off_the_contract_are_errors_or_skipped_entries() {
        let (entries, without_count) = decode_client_sessions(
            br#"[{"db_ip":"1.2.3.4","session_num":null},{"session_num":2,"extra":1}]"#,
        )
        .unwrap();
        assert_eq!((entries.len(), without_count), (1, 1));
        for bad in [
            &b"{}"[..],
            b"",
            b"[{\"session_num\":-1}]",
            b"<html>\x01oops</html>",
        ] {
            let err = decode_client_sessions(bad).unwrap_err();
            assert!(err.contains("ReportClientSessionNew"), "{err}");
            assert!(!err.contains('\x01'));
        }
    }

    #[test]
    fn error_bodies_give_code_and_message_never_the_token() {
        let token = Secret::new("MIItoken-value".into());
        let e = decode_error(
            br#"{"error_code":"DBSS.XXX","error_msg":"bad token MIItoken-value\n","details":[],"encoded_authorization_message":null}"#,
            Some(&token),
        );
        assert_eq!(e.code, "DBSS.XXX");
        assert_eq!(e.message, "bad token <redacted>");
        let e = decode_error(
            br#"{"details":[{"error_code":"PDP5.1","error_msg":"denied"}]}"#,
            None,
        );
        assert_eq!((e.code.as_str(), e.message.as_str()), ("PDP5.1", "denied"));
        let e = decode_error(&b"x".repeat(1000), None);
        assert_eq!((e.code.as_str(), e.message.len()), ("", MAX_MESSAGE_CHARS));
    }

    #[test]
    fn statuses_map_to_reasons() {
        for (status, reason) in [
            (400, Reason::BadRequest),
            (404, Reason::BadRequest),
            (401, Reason::Auth),
            (403, Reason::Forbidden),
            (500, Reason::Server),
            (503, Reason::Server),
            (204, Reason::Query),
        ] {
            assert_eq!(reason_of(StatusCode::from_u16(status).unwrap()), reason);
        }
    }

    #[test]
    fn sql_ids_cannot_leave_the_path() {
        assert!(valid_sql_id("J8Zcg5gBPj4d6CRtK3Y4"));
        assert!(valid_sql_id("a-b_c"));
        for bad in ["", "..", "a/b", "a?b", "a%2Fb", "a b", &"a".repeat(129)] {
            assert!(!valid_sql_id(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Any answer DBSS could send: decoded or refused with a one-line message,
        /// never a panic; the error of any body is printable and bounded.
        #[test]
        fn any_answer_is_decoded_or_refused(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            json in r#"\[(\{"(db_id|db_ip|db_name|session_num|x)":(null|-?[0-9]{1,20}|"[^"]{0,8}"|\[\]),?\}, ?){0,4}\]"#,
        ) {
            for input in [&body[..], json.as_bytes()] {
                if let Err(message) = decode_client_sessions(input) {
                    proptest::prop_assert!(!message.chars().any(char::is_control));
                }
                let error = decode_error(input, Some(&Secret::new("tok".into())));
                proptest::prop_assert!(error.message.chars().count() <= MAX_MESSAGE_CHARS);
                proptest::prop_assert!(!error.message.chars().any(char::is_control));
                proptest::prop_assert!(!error.code.chars().any(char::is_control));
            }
        }
    }
}
