//! The deployment kit, checked by the tools that will read it: promtool for the rules
//! and Prometheus configs, systemd-analyze for the unit, kubernetes-validate for the
//! manifests, and our own config parser for every exporter config shipped.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

/// Runs a tool; returns (success, stdout + stderr). A missing tool fails the test
/// with what installs it.
fn run(cmd: &mut Command, installs: &str) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?} could not run ({e}): {installs} installs it (scripts/install-deps.sh)")
    });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn yaml(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path(rel)).unwrap())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn alerting_rules_pass_promtool_and_their_unit_tests() {
    let dir = path("deploy/prometheus");
    let (ok, out) = run(
        Command::new("promtool")
            .args(["check", "rules", "alerts.yml"])
            .current_dir(&dir),
        "Debian's prometheus",
    );
    assert!(ok, "{out}");
    let (ok, out) = run(
        Command::new("promtool")
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(&dir),
        "Debian's prometheus",
    );
    assert!(ok, "{out}");
    // Every alert has a promtool test and a runbook section.
    let runbook = std::fs::read_to_string(path("docs/runbook.md"))
        .unwrap()
        .to_lowercase();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for group in yaml("deploy/prometheus/alerts.yml")["groups"]
        .as_sequence()
        .unwrap()
    {
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            assert!(
                tests.contains(&format!("alertname: {alert}")),
                "{alert} has no promtool test"
            );
            assert!(
                runbook.contains(&format!("## {}", alert.to_lowercase())),
                "{alert} has no runbook section"
            );
            let url = rule["annotations"]["runbook_url"].as_str().unwrap();
            assert!(
                url.ends_with(&format!("#{}", alert.to_lowercase())),
                "{alert}: {url}"
            );
            // The annotations locate the problem with the alert's labels.
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|s| s.contains("$labels.")),
                    "{alert} {key}"
                );
            }
        }
    }
}

#[test]
fn prometheus_configs_pass_promtool() {
    for dir in ["deploy/prometheus", "deploy/docker"] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            path(dir).join("prometheus.yml"),
            tmp.path().join("prometheus.yml"),
        )
        .unwrap();
        std::fs::copy(
            path("deploy/prometheus/alerts.yml"),
            tmp.path().join("alerts.yml"),
        )
        .unwrap();
        let (ok, out) = run(
            Command::new("promtool")
                .args(["check", "config", "prometheus.yml"])
                .current_dir(tmp.path()),
            "Debian's prometheus",
        );
        assert!(ok, "{dir}/prometheus.yml: {out}");
    }
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(path("deploy/systemd/session-exporter.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/session_exporter $ARGS\n"));
    // verify checks that ExecStart exists: point it at the binary just built.
    let unit = unit.replace(
        "/usr/bin/session_exporter",
        env!("CARGO_BIN_EXE_session_exporter"),
    );
    let file = tmp.path().join("session-exporter.service");
    std::fs::write(&file, unit).unwrap();
    // verify also runs `man` for Documentation=: give it the man page the binary makes.
    let man1 = tmp.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let page = Command::new(env!("CARGO_BIN_EXE_session_exporter"))
        .arg("--generate=man")
        .output()
        .unwrap();
    std::fs::write(man1.join("session_exporter.1"), page.stdout).unwrap();
    let (ok, out) = run(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&file)
            .env("MANPATH", tmp.path().join("man")),
        "Debian's systemd, and man-db",
    );
    // verify exits 0 on unknown keys but prints them: any word about the file fails.
    let about_unit: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("session-exporter.service"))
        .collect();
    assert!(ok && about_unit.is_empty(), "{out}");

    // systemd's own hardening score (0 best, 10 worst): 1.5 before the packages,
    // 1.2 since (PrivateMounts, no @resources calls). It must not get worse.
    let (ok, out) = run(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&file),
        "Debian's systemd",
    );
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("session-exporter.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{out}"));
    assert!(ok && score <= 1.2, "exposure {score}, was 1.2:\n{out}");
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=session-exporter",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(
            std::fs::read_to_string(path("deploy/systemd/session-exporter.service"))
                .unwrap()
                .contains(hardening),
            "{hardening}"
        );
    }
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let dir = path("deploy/kubernetes");
    let core = [
        "configmap.yaml",
        "secret.yaml",
        "deployment.yaml",
        "service.yaml",
    ];
    let (ok, out) = run(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .args(core)
            .current_dir(&dir),
        "PyPI's kubernetes-validate",
    );
    assert!(
        ok && !out.contains("WARN") && !out.contains("ERROR"),
        "{out}"
    );

    // No schema ships for the ServiceMonitor CRD: check it against the Service.
    let service = yaml("deploy/kubernetes/service.yaml");
    let monitor = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(
        monitor["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );

    // The Deployment probes our endpoints, runs as non-root on a read-only root FS.
    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/-/healthy")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/-/ready")
    );
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert!(container["resources"]["limits"]["memory"]
        .as_str()
        .is_some());

    // The ConfigMap's config is one the exporter accepts (the password comes from the
    // Secret, which is mounted only in the cluster).
    let config = yaml("deploy/kubernetes/configmap.yaml")["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    check_config(&config, &["password_file"]);
}

#[test]
fn compose_demo_and_dockerfile_reference_what_exists() {
    let compose = yaml("deploy/docker/compose.yaml");
    let services = compose["services"].as_mapping().unwrap();
    for name in ["seekdb", "exporter", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "compose lacks {name}");
    }
    let base = path("deploy/docker");
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                assert!(base.join(host).exists(), "{name:?}: {host} does not exist");
            }
        }
        for port in service["ports"].as_sequence().into_iter().flatten() {
            assert!(
                port.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name:?} publishes beyond loopback"
            );
        }
    }
    let build = &services["exporter"]["build"];
    assert!(base
        .join(build["context"].as_str().unwrap())
        .join(build["dockerfile"].as_str().unwrap())
        .exists());

    // The image packages a binary built outside it (tests/it/packages/ builds and
    // runs it): every binary it may copy is let through .dockerignore.
    let dockerfile = std::fs::read_to_string(path("deploy/docker/Dockerfile")).unwrap();
    let dockerignore = std::fs::read_to_string(path(".dockerignore")).unwrap();
    let default_binary = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG BINARY="))
        .expect("ARG BINARY=");
    for binary in [default_binary, build["args"]["BINARY"].as_str().unwrap()] {
        assert!(
            dockerignore.lines().any(|l| l == format!("!{binary}")),
            ".dockerignore keeps {binary} out of the context"
        );
    }
    assert!(dockerfile.contains("COPY ${BINARY} /usr/bin/session_exporter"));
    assert!(
        dockerfile.contains("\nUSER 65532:65532\n"),
        "the image runs as non-root"
    );
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.trim_start().starts_with("HEALTHCHECK")),
        "no HEALTHCHECK instruction, by design"
    );

    check_config(
        &std::fs::read_to_string(base.join("exporter.yaml")).unwrap(),
        &[],
    );
}

/// Parses an exporter config with the exporter's own parser; only problems whose key
/// contains one of `allowed` (e.g. a secret file that exists only when deployed) pass.
fn check_config(text: &str, allowed: &[&str]) {
    match session_exporter::config::parse(Path::new("shipped.yaml"), text, &|_| None) {
        Ok(_) => {}
        Err(session_exporter::config::ConfigError::Invalid { problems, .. }) => {
            for problem in problems {
                assert!(
                    allowed.iter().any(|a| problem.key.contains(a)),
                    "{problem:?}"
                );
            }
        }
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn the_dashboard_is_grafana_10_with_units_and_variables() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path("grafana/session-exporter.json")).unwrap(),
    )
    .unwrap();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap() >= 36,
        "Grafana 10+ schema"
    );
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "target", "tenant", "exporter"]);
    for variable in &dashboard["templating"]["list"].as_array().unwrap()[1..3] {
        assert_eq!(variable["multi"].as_bool(), Some(true), "{variable}");
    }
    // From a spike on a session panel to who was there: the sessions page at the
    // clicked time, from the session history.
    let mut linked = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap();
        assert_eq!(
            panel["datasource"]["uid"].as_str(),
            Some("${datasource}"),
            "{title}"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].as_str().is_some(),
            "{title} has no unit"
        );
        let width = panel["gridPos"]["w"].as_u64().unwrap();
        let x = panel["gridPos"]["x"].as_u64().unwrap();
        assert!(x + width <= 24, "{title} is wider than the screen");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(
                target["datasource"]["uid"].as_str(),
                Some("${datasource}"),
                "{title}"
            );
        }
        if let Some(links) = panel["fieldConfig"]["defaults"]["links"].as_array() {
            assert_eq!(
                links[0]["url"],
                "${exporter:raw}/sessions?tenant=${__field.labels.tenant}&at=${__value.time}",
                "{title}"
            );
            linked.push(title);
        }
    }
    for title in [
        "Sessions per tenant: total and active",
        "Sessions waiting for a lock",
        "Idle in transaction by user",
        "Open transactions",
    ] {
        assert!(
            linked.contains(&title),
            "{title} links no moment: {linked:?}"
        );
    }
}
