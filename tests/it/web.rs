//! --web.config.file for real: TLS with generated certificates, client certificates,
//! bcrypt basic auth, headers, and reloading all of it; checked with curl.

use crate::common::Exporter;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "session_exporter test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "scraper");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca).unwrap();

        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca.pem());
        write("server.pem", server.pem());
        write("server.key", server_key.serialize_pem());
        write("client.pem", client.pem());
        write("client.key", client_key.serialize_pem());
        Self { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// curl's answer: Ok(HTTP status, headers) or Err(curl's exit code) when no HTTP answer came.
pub(crate) fn curl(url: &str, args: &[&str]) -> Result<(u16, String), i32> {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "5"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (scripts/install-deps.sh installs it)");
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head))
}

pub(crate) fn web_yml(pki: &Pki, dir: &Path, extra_tls: &str, password: &str) -> PathBuf {
    let hash = bcrypt::hash(password, 4).unwrap();
    let path = dir.join("web.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra_tls}basic_auth_users:\n  alice: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
            pki.path("server.pem").display(),
            pki.path("server.key").display(),
        ),
    )
    .unwrap();
    path
}

const CONFIG: &str = "global:\n  collect_interval: 1s\n  collect_timeout: 500ms\ntargets:\n  - name: dead\n    kind: mysql\n    address: 127.0.0.1:1\n    user: m\n";

#[test]
fn tls_basic_auth_headers_and_their_reload() {
    let pki = Pki::new();
    let web_dir = tempfile::tempdir().unwrap();
    let web = web_yml(&pki, web_dir.path(), "", "first-pw");
    let exporter = Exporter::start_with(CONFIG, &[&format!("--web.config.file={}", web.display())]);
    let url = format!("https://{}/metrics", exporter.addr);
    let ca_path = pki.path("ca.pem").display().to_string();
    let ca: &[&str] = &["--cacert", &ca_path];

    let (status, head) = curl(&url, ca).unwrap();
    assert_eq!(status, 401, "no credentials");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{head}"
    );
    assert_eq!(
        curl(&url, &[ca[0], ca[1], "-u", "alice:wrong"]).unwrap().0,
        401
    );
    assert_eq!(
        curl(&url, &[ca[0], ca[1], "-u", "mallory:first-pw"])
            .unwrap()
            .0,
        401
    );
    let (status, head) = curl(&url, &[ca[0], ca[1], "-u", "alice:first-pw"]).unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{head}"
    );
    // Every endpoint is behind the same door.
    assert_eq!(
        curl(&format!("https://{}/-/healthy", exporter.addr), ca)
            .unwrap()
            .0,
        401
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = curl(&format!("http://{}/metrics", exporter.addr), &[]);
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");

    // A reload reads the web config again: the new password works, the old one not.
    web_yml(&pki, web_dir.path(), "", "second-pw");
    assert!(Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap()
        .success());
    exporter.wait_until(
        "the new password is accepted",
        Duration::from_secs(10),
        || curl(&url, &[ca[0], ca[1], "-u", "alice:second-pw"]).is_ok_and(|(s, _)| s == 200),
    );
    assert_eq!(
        curl(&url, &[ca[0], ca[1], "-u", "alice:first-pw"])
            .unwrap()
            .0,
        401
    );

    // A broken web config is refused whole; the running one stays.
    std::fs::write(&web, "basic_auth_users:\n  alice: not-a-hash\n").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap()
        .success());
    exporter.wait_until(
        "the refused reload is logged",
        Duration::from_secs(10),
        || {
            exporter
                .log()
                .contains("basic_auth_users.alice: not a bcrypt hash")
        },
    );
    assert_eq!(
        curl(&url, &[ca[0], ca[1], "-u", "alice:second-pw"])
            .unwrap()
            .0,
        200
    );
}

#[test]
fn client_certificates_are_required_when_configured() {
    let pki = Pki::new();
    let web_dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS12\n",
        pki.path("ca.pem").display()
    );
    let web = web_yml(&pki, web_dir.path(), &extra, "pw");
    let exporter = Exporter::start_with(CONFIG, &[&format!("--web.config.file={}", web.display())]);
    let url = format!("https://{}/metrics", exporter.addr);
    let ca_path = pki.path("ca.pem").display().to_string();
    let ca: &[&str] = &["--cacert", &ca_path];

    let refused = curl(&url, &[ca[0], ca[1], "-u", "alice:pw"]);
    assert!(
        refused.is_err(),
        "without a client certificate the handshake fails: {refused:?}"
    );
    let (cert, key) = (
        pki.path("client.pem").display().to_string(),
        pki.path("client.key").display().to_string(),
    );
    let client: &[&str] = &[ca[0], ca[1], "--cert", &cert, "--key", &key];
    assert_eq!(
        curl(&url, &[client, &["-u", "alice:pw"]].concat())
            .unwrap()
            .0,
        200
    );
    // A client certificate does not replace the password.
    assert_eq!(curl(&url, client).unwrap().0, 401);
}

#[test]
fn a_bad_web_config_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_session_exporter"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.config.file={}", web.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tls_server_config.cert_file") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
