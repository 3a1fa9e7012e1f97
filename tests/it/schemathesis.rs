//! Fuzzes the session API with schemathesis (PyPI; installed by
//! scripts/install-deps.sh) against docs/openapi.yaml, on a live exporter reading the
//! real MariaDB and seekdb: no server error, every status, content type, header and
//! body as documented, authentication enforced. Negative data (values the spec
//! forbids) is sent too; schemathesis' own check that such data is refused is left
//! out, because a query string cannot tell the boolean `false` from the string
//! "false" it generates as "not a boolean".

use crate::common::{Exporter, Servers};
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "schemathesis-token-0123456789";

#[test]
fn the_api_survives_schemathesis() {
    let Some(servers) = Servers::get() else {
        return;
    };
    if Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_err()
    {
        let why = "schemathesis is not installed: run scripts/install-deps.sh";
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let pw = servers.monitor_password_file.display();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\npassthrough:\n  enabled: true\n  bearer_token_file: {}\ntargets:\n  - name: maria\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {pw}\n  - name: seek\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {pw}\n    tenant: seek\n",
        token.display(),
        servers.mariadb_addr,
        servers.seekdb_addr,
    ));
    exporter.wait_until("the exporter is ready", Duration::from_secs(30), || {
        exporter
            .try_get("/-/ready")
            .is_some_and(|(status, _, _)| status == 200)
    });
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    for tenant in ["maria", "seek"] {
        let out = Command::new("schemathesis")
            .current_dir(dir.path())
            .args(["run", spec, "--base-url"])
            .arg(format!("http://{}", exporter.addr))
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--set-path", &format!("name={tenant}")])
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "negative_data_rejection",
            ])
            .args([
                "-D",
                "all",
                "--hypothesis-max-examples",
                "100",
                "--hypothesis-derandomize",
            ])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("run schemathesis");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis on tenant {tenant} failed:\n{report}\n{}\n--- exporter log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            exporter.log()
        );
        assert!(report.contains("not_a_server_error"), "{report}");
    }
}
