//! The tests that need the servers to themselves: they count every session of a
//! server exactly, so no other test may open one meanwhile ([`Servers::exclusive`]).
//!
//! They are gathered here, early in name order, because libtest starts tests in
//! that order and an exclusive test waits for every test running beside it: beside
//! a long one (the schemathesis run, a package's install) it held a test thread
//! idle for over a minute.

use crate::common::scenario::{assert_exact_sessions, Server};
use crate::common::Servers;

#[test]
fn mariadb_counts_every_session_exactly() {
    let Some(servers) = Servers::exclusive() else {
        return;
    };
    let admin = |sql: &str| servers.mariadb_root(sql);
    assert_exact_sessions(&Server {
        addr: &servers.mariadb_addr,
        admin: &admin,
        target_yaml: format!(
            "    kind: mysql\n    user: monitor\n    password_file: {}\n",
            servers.monitor_password_file.display()
        ),
        target: "maria",
        tenant: "maria",
        prefix: "it_m",
        ip_base: 10,
    });
}

#[test]
fn seekdb_counts_every_session_exactly() {
    let Some(servers) = Servers::exclusive() else {
        return;
    };
    let admin = |sql: &str| servers.seekdb_root(sql);
    assert_exact_sessions(&Server {
        addr: &servers.seekdb_addr,
        admin: &admin,
        // No `tenant:` and no `@tenant` in the user: the tenant label is the target name.
        target_yaml: format!(
            "    kind: oceanbase\n    user: monitor\n    password_file: {}\n",
            servers.monitor_password_file.display()
        ),
        target: "seek",
        tenant: "seek",
        prefix: "it_o",
        ip_base: 20,
    });
}
