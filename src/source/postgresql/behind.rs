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
    /// this cycle.
    pub fn of(settings: &Postgresql, real: &Backends) -> Self {
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
                format!("({pid}, {port}, {addr}, {})", literal(&client.application))
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
        let real = RealClients::of(&settings(&[]), &Backends::new());
        assert_eq!(
            (real.client.as_str(), real.app.as_str(), real.join.as_str()),
            ("host(a.client_addr)", "a.application_name", "")
        );
        let behind = RealClients::of(&settings(&["pgb"]), &Backends::new());
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
                    application: "it's \\ web\0".into(),
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
        let real = RealClients::of(&settings(&["pgb"]), &backends);
        assert_eq!(
            real.join,
            "LEFT JOIN (VALUES (7, 5000, NULL::text, E''::text), \
             (42, 5001, E'10.0.0.7'::text, E'it''s \\\\ web'::text)) AS r (pid, port, addr, app) \
             ON r.pid = a.pid AND r.port = a.client_port "
        );
        assert!(real.client.contains("ELSE r.addr END"));
        assert!(real.app.contains(WITHOUT_ADDED_HOST));
    }
}
