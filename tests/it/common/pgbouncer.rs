//! The shared PgBouncer, in front of the shared PostgreSQL
//! (`scripts/test-servers.sh`), as [`Servers::pgbouncer`] gives it.

use super::Servers;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Pgbouncer {
    pub addr: String,
    /// The password of `it_pgb`, the application role it serves (database `postgres`,
    /// pool_size 2).
    pub app_password: String,
    /// Its configuration file, for a private PgBouncer made from it.
    pub ini: PathBuf,
}

impl Pgbouncer {
    /// From the environment `scripts/test-servers.sh env` prints; None when unset.
    pub(super) fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (addr, password, ini) = (
            var("SE_TEST_PGBOUNCER_ADDR")?,
            var("SE_TEST_PGBOUNCER_APP_PASSWORD_FILE")?,
            var("SE_TEST_PGBOUNCER_INI")?,
        );
        Some(Self {
            addr,
            app_password: std::fs::read_to_string(password)
                .expect("PgBouncer's application password file")
                .trim()
                .to_string(),
            ini: ini.into(),
        })
    }
}

impl Servers {
    /// The shared PgBouncer; None (with the reason printed) when it is not
    /// configured, which fails the test in CI.
    pub fn pgbouncer(&self) -> Option<Pgbouncer> {
        if self.pgbouncer.is_none() {
            let why = "SE_TEST_PGBOUNCER_* variables are not set: run the tests with \
                       ./scripts/test.sh, which starts PgBouncer";
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
        }
        self.pgbouncer.clone()
    }
}
