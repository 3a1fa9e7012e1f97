//! The real clients of sessions a pooler in front serves (`behind:`): every such
//! session comes from the pooler's address, so the client dimension would say
//! nothing. The pooler says, in the same cycle, which real client each backend
//! serves ([`crate::source::front`]); the statement joins that list on the
//! backend's pid and `client_port` (the pooler's side of the connection, so a pid
//! of another server cannot match) and takes the real address and application.
//! A backend it does not name keeps the pooler's address. The ` - host:port` that
//! PgBouncer's `application_name_add_host` appends is cut off every application of
//! such a target, so the dimension stays bounded.

use super::super::front::Backends;
use crate::config::postgresql::Postgresql;
use std::collections::BTreeMap;

/// The `client` and `app` expressions of the statement's sessions, and the join
/// they read (empty when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RealClients {
    pub client: String,
    pub app: String,
    pub join: String,
}

/// `application_name` without the suffix `application_name_add_host` appends.
const WITHOUT_ADDED_HOST: &str = "regexp_replace(a.application_name, ' - [^ ]+:[0-9]+$', '')";

impl RealClients {
    /// The expressions for `settings`, with the backends the poolers in front named
    /// this cycle. `utf8`: the server's encoding is UTF-8, so any character of an
    /// application's name can be sent; else only ASCII is (the server converts the
    /// whole statement, and one character it cannot hold would refuse it), and the
    /// rest reads `?`.
    pub fn of(settings: &Postgresql, real: &Backends, utf8: bool) -> Self {
        let plain = |app: &str| Self {
            client: "host(a.client_addr)".to_string(),
            app: app.to_string(),
            join: String::new(),
        };
        if settings.behind.is_empty() {
            return plain("a.application_name");
        }
        if real.is_empty() {
            return plain(WITHOUT_ADDED_HOST);
        }
        let sorted: BTreeMap<_, _> = real.iter().collect();
        let rows: Vec<String> = sorted
            .into_iter()
            .map(|((pid, port), client)| {
                let addr = match client.addr.as_str() {
                    "" | "unix" => "NULL::text".to_string(),
                    addr => literal(addr),
                };
                let mut application = bounded(&client.application);
                if !utf8 {
                    application = application
                        .chars()
                        .map(|c| if c.is_ascii() { c } else { '?' })
                        .collect();
                }
                format!("({pid}, {port}, {addr}, {})", literal(&application))
            })
            .collect();
        Self {
            client: "CASE WHEN r.pid IS NULL THEN host(a.client_addr) ELSE r.addr END".to_string(),
            app: format!("CASE WHEN r.pid IS NULL THEN {WITHOUT_ADDED_HOST} ELSE r.app END"),
            join: format!(
                "LEFT JOIN (VALUES {}) AS r (pid, port, addr, app) \
                 ON r.pid = a.pid AND r.port = a.client_port ",
                rows.join(", ")
            ),
        }
    }
}

/// The most bytes of an application's name PostgreSQL keeps (`NAMEDATALEN` - 1):
/// what a client sends beyond it could not be its `application_name` anyway.
const MAX_APPLICATION: usize = 63;

/// An application's name as the statement carries it: at most [`MAX_APPLICATION`]
/// bytes (cut at a character), without control characters.
fn bounded(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_APPLICATION {
            break;
        }
        out.push(c);
    }
    out
}

/// `text` as a PostgreSQL string literal of type text, whatever
/// `standard_conforming_strings` says: an escape string (`E'…'`) with its
/// backslashes and quotes doubled. A NUL, which no text value may hold, is
/// dropped. (An application's name is chosen by its client.)
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 9);
    out.push_str("E'");
    for c in text.chars() {
        match c {
            '\0' => {}
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push_str("'::text");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::postgresql::SslMode;
    use crate::config::testing;
    use crate::source::front::RealClient;

    fn settings(behind: &[&str]) -> Postgresql {
        Postgresql {
            database: testing::database("monitor", 5432),
            dbname: "postgres".into(),
            sslmode: SslMode::Disable,
            root_certs: Vec::new(),
            behind: behind.iter().map(|b| b.to_string()).collect(),
        }
    }

    #[test]
    fn without_a_pooler_nothing_changes() {
        let real = RealClients::of(&settings(&[]), &Backends::new(), true);
        assert_eq!(
            (real.client.as_str(), real.app.as_str(), real.join.as_str()),
            ("host(a.client_addr)", "a.application_name", "")
        );
        let behind = RealClients::of(&settings(&["pgb"]), &Backends::new(), true);
        assert_eq!(
            behind.app, WITHOUT_ADDED_HOST,
            "the suffix is cut all the same"
        );
    }

    /// Each backend's real client by pid and port, in a stable order; a name with
    /// quotes, backslashes and a NUL is one literal still; a Unix socket client has
    /// no address.
    #[test]
    fn the_real_clients_are_joined_by_pid_and_port_as_literals() {
        let backends = Backends::from([
            (
                (42, 5001),
                RealClient {
                    addr: "10.0.0.7".into(),
                    application: "it's \\ web\0\n".into(),
                },
            ),
            (
                (7, 5000),
                RealClient {
                    addr: "unix".into(),
                    application: String::new(),
                },
            ),
        ]);
        let real = RealClients::of(&settings(&["pgb"]), &backends, true);
        let latin1 = RealClients::of(&settings(&["pgb"]), &backends, false);
        let app = |c: &str| c.replace("10.0.0.7", "");
        assert_eq!(
            app(&real.join),
            app(&latin1.join),
            "ASCII names are sent as they are"
        );
        assert_eq!(
            real.join,
            "LEFT JOIN (VALUES (7, 5000, NULL::text, E''::text), \
             (42, 5001, E'10.0.0.7'::text, E'it''s \\\\ web'::text)) AS r (pid, port, addr, app) \
             ON r.pid = a.pid AND r.port = a.client_port "
        );
        assert!(real.client.contains("ELSE r.addr END"));
        let accented = Backends::from([(
            (1, 2),
            RealClient {
                addr: "10.0.0.1".into(),
                application: "café".into(),
            },
        )]);
        let sent = |utf8| RealClients::of(&settings(&["pgb"]), &accented, utf8).join;
        assert!(sent(true).contains("E'café'") && sent(false).contains("E'caf?'"));
        let long = "é".repeat(40);
        assert_eq!(
            bounded(&long).len(),
            62,
            "cut at a character, within 63 bytes"
        );
        assert!(real.app.contains(WITHOUT_ADDED_HOST));
    }
}
