//! PostgreSQL's `pg_blocking_pids` names, for a session queued on a row, the session
//! ahead of it in the queue: three waiters on one row are a chain, or a fan, under
//! the holder, never a cycle.

use super::{Clients, EndSessions, PASSWORD};
use crate::common::{Exporter, Servers};

#[test]
fn three_waiters_on_one_row_are_no_cycle() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.postgres_role("it_pg_graph", PASSWORD, "");
    servers.postgres_database("it_pg_graphdb");
    servers.postgres_admin("ALTER DATABASE it_pg_graphdb OWNER TO it_pg_graph");
    let _sessions = EndSessions::of(&servers, &["it_pg_graph"]);
    let clients = Clients::new(&servers.postgres_addr);
    let holder = clients.open("it_pg_graph", "it_pg_graphdb", "127.0.0.95");
    clients.run(
        &holder,
        "DROP TABLE IF EXISTS g; CREATE TABLE g (id int PRIMARY KEY, v int); \
         INSERT INTO g VALUES (1, 1)",
    );
    clients.run(&holder, "BEGIN; UPDATE g SET v = v + 1 WHERE id = 1");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n  - name: pgg\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    filter: {{users: {{allow: [it_pg_graph]}}}}\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n",
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    let pid = |client: &tokio_postgres::Client| -> u64 {
        let row = clients
            .runtime
            .block_on(client.query_one("SELECT pg_backend_pid()", &[]))
            .unwrap();
        u64::try_from(row.get::<_, i32>(0)).unwrap()
    };
    let mut waiters = Vec::new();
    let mut ids = Vec::new();
    for from in ["127.0.0.96", "127.0.0.97", "127.0.0.98"] {
        let waiter = clients.open("it_pg_graph", "it_pg_graphdb", from);
        ids.push(pid(&waiter));
        clients.start(&waiter, "UPDATE g SET v = v + 1 WHERE id = 1");
        waiters.push(waiter);
    }
    crate::pileup::assert_no_cycle_under_the_holder(&exporter, "pgg", pid(&holder), &ids);
}
