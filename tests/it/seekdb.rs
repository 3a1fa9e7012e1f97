//! seekdb (a real OceanBase kernel, single tenant through V$OB_PROCESSLIST): exact gauges.

use crate::common::scenario::{assert_exact_sessions, Server};
use crate::common::Servers;

#[test]
fn counts_every_session_exactly() {
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
