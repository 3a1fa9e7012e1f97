//! The packages and the image, as an operator gets them: `scripts/package.sh` builds
//! the .deb, the .rpm and the staged binary once per run; the .deb is installed with
//! `apt-get` on this machine, run the way its systemd unit runs it (as the service
//! user, with its environment files) against the test servers, and purged; the .rpm
//! is read with Debian's `rpm` (it cannot be installed here); the image is built with
//! podman on a base made locally by mmdebstrap (no registry is reachable) and run
//! read-only as non-root.
//!
//! These tests change the machine (a package, a system user, images): they need root
//! or passwordless sudo, and every package, image and container they make is removed
//! by a guard, also when they fail. Outside CI they skip, saying why, where that is
//! missing.

use crate::common::{free_port, http_get, Metrics, Servers};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const USER: &str = "session-exporter";
const PACKAGE: &str = "session-exporter";

mod image;

/// What `scripts/package.sh` made.
struct Built {
    deb: PathBuf,
    rpm: PathBuf,
    /// The stripped binary both packages and the image take.
    binary: PathBuf,
}

/// Runs `scripts/package.sh` once for every test of this module (it rebuilds
/// target/package/ from scratch, so two runs at once would race). Under
/// `scripts/test.sh`, whose build links against glibc 2.17 as a release does
/// (`SE_TEST_BUILD_GLIBC`), it packages the binary these tests run; else it makes its
/// own release build.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        // An operator's environment, not `cargo test`'s: build scripts rerun when
        // variables such as CARGO_PKG_NAME or OUT_DIR differ from the last build's,
        // and a release build made beforehand would be redone.
        let mut package = Command::new("bash");
        package
            .arg(Path::new(ROOT).join("scripts/package.sh"))
            .env_clear();
        if std::env::var_os("SE_TEST_BUILD_GLIBC").is_some() {
            package.args(["--binary", env!("CARGO_BIN_EXE_session_exporter")]);
        }
        for name in [
            "PATH",
            "HOME",
            "USER",
            "LANG",
            "TMPDIR",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "CI",
        ] {
            if let Some(value) = std::env::var_os(name) {
                package.env(name, value);
            }
        }
        let out = package
            .stderr(Stdio::piped())
            .output()
            .expect("run scripts/package.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/package.sh failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let artifact = |suffix: &str| {
            let line = stdout
                .lines()
                .find(|l| l.ends_with(suffix))
                .unwrap_or_else(|| panic!("package.sh printed no {suffix}: {stdout}"));
            Path::new(ROOT).join(line)
        };
        Built {
            deb: artifact(".deb"),
            rpm: artifact(".rpm"),
            binary: Path::new(ROOT).join("target/package/session_exporter"),
        }
    })
}

/// Whether this process may change the machine (root, or sudo without a password);
/// None with the reason printed when it may not and that is allowed (outside CI).
fn privileged(tools: &[&str]) -> Option<()> {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    let why = if !missing.is_empty() {
        format!(
            "{} not installed (scripts/install-deps.sh installs them)",
            missing.join(", ")
        )
    } else if !is_root() && !as_root(&["true"]).status().is_ok_and(|s| s.success()) {
        "neither root nor passwordless sudo: packages cannot be installed".to_string()
    } else {
        return Some(());
    };
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `args` as root: directly when this process is root, else through `sudo -n`.
fn as_root(args: &[&str]) -> Command {
    let mut cmd;
    if is_root() {
        cmd = Command::new(args[0]);
        cmd.args(&args[1..]);
    } else {
        cmd = Command::new("sudo");
        cmd.arg("-n").args(args);
    }
    cmd
}

/// Runs a command to completion: its stdout, failing the test with everything it
/// said when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a file as root, keeping its owner and mode when it exists (as an editor
/// does): `tee` truncates and writes in place.
fn write_as_root(path: &str, content: &str) {
    let mut child = as_root(&["tee", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tee");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(content.as_bytes())
        .expect("write through tee");
    assert!(child.wait().expect("tee").success(), "tee {path} failed");
}

/// The packaging family: what differs between the .deb and the .rpm.
#[derive(Clone, Copy, PartialEq)]
enum Family {
    Deb,
    Rpm,
}

/// One file a package installs.
struct Entry {
    path: &'static str,
    mode: u32,
    group: &'static str,
    /// A configuration file: upgrades keep an operator's changes.
    config: bool,
}

/// Every file each package installs, with its mode and group (the owner is root).
fn expected(family: Family) -> Vec<Entry> {
    let file = |path, mode| Entry {
        path,
        mode,
        group: "root",
        config: false,
    };
    let mut entries = vec![
        file("/usr/bin/session_exporter", 0o755),
        file("/usr/lib/systemd/system/session-exporter.service", 0o644),
        file("/usr/lib/sysusers.d/session-exporter.conf", 0o644),
        Entry {
            path: "/etc/session-exporter/config.yaml",
            mode: 0o640,
            group: USER,
            config: true,
        },
        Entry {
            path: match family {
                Family::Deb => "/etc/default/session-exporter",
                Family::Rpm => "/etc/sysconfig/session-exporter",
            },
            mode: 0o644,
            group: "root",
            config: true,
        },
        file("/usr/share/doc/session-exporter/README.md", 0o644),
        file(
            "/usr/share/doc/session-exporter/docs/architecture.md",
            0o644,
        ),
        file(
            "/usr/share/doc/session-exporter/docs/configuration.md",
            0o644,
        ),
        file("/usr/share/doc/session-exporter/docs/dbss.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/pgbouncer.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/metrics.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/openapi.yaml", 0o644),
        file("/usr/share/doc/session-exporter/docs/operating.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/reliability.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/runbook.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/session-api.md", 0o644),
        file("/usr/share/doc/session-exporter/docs/history.md", 0o644),
        file("/usr/share/doc/session-exporter/config.example.yaml", 0o644),
        file("/usr/share/doc/session-exporter/examples/alerts.yml", 0o644),
        file(
            "/usr/share/doc/session-exporter/examples/session-exporter.json",
            0o644,
        ),
        file("/usr/share/man/man1/session_exporter.1.gz", 0o644),
        file(
            "/usr/share/bash-completion/completions/session_exporter",
            0o644,
        ),
        file(
            "/usr/share/fish/vendor_completions.d/session_exporter.fish",
            0o644,
        ),
    ];
    match family {
        Family::Deb => {
            entries.push(file(
                "/usr/share/zsh/vendor-completions/_session_exporter",
                0o644,
            ));
            // Debian policy's copyright file, which cargo-deb writes.
            entries.push(file("/usr/share/doc/session-exporter/copyright", 0o644));
        }
        Family::Rpm => entries.push(file(
            "/usr/share/zsh/site-functions/_session_exporter",
            0o644,
        )),
    }
    entries
}

/// The exporter's config for the three test servers, with the password inline: the
/// packaged file is readable by the service's group only, which is the point.
fn targets_yaml(servers: &Servers, password: &str) -> String {
    format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n\
         - name: mariadb\n  kind: mysql\n  address: {m}\n  user: monitor\n  password: \"{password}\"\n\
         - name: seekdb\n  kind: oceanbase\n  address: {s}\n  user: monitor\n  password: \"{password}\"\n  tenant: seekdb\n\
         - name: postgres\n  kind: postgresql\n  address: {p}\n  user: monitor\n  password: \"{password}\"\n",
        m = servers.mariadb_addr,
        s = servers.seekdb_addr,
        p = servers.postgres_addr,
    )
}

/// Scrapes `addr` until every test server's target is up, failing with the last
/// exposition (and `log`) after 30 s.
fn wait_until_all_up(addr: &str, log: impl Fn() -> String) -> Metrics {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        if let Some((200, _, body)) = http_get(addr, "/metrics", &[]) {
            last = String::from_utf8_lossy(&body).into_owned();
            let metrics = Metrics::parse(&last);
            let up = |target| {
                metrics
                    .matching("dbsession_up", &[("target", target)])
                    .first()
                    .map(|(_, v)| *v)
            };
            if ["mariadb", "seekdb", "postgres"]
                .iter()
                .all(|t| up(t) == Some(1.0))
            {
                return metrics;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "not every target came up on {addr}:\n{}\n--- log ---\n{}",
        last.lines()
            .filter(|l| l.starts_with("dbsession_up"))
            .collect::<Vec<_>>()
            .join("\n"),
        log()
    );
}

/// Purges the package when dropped, so a failing test leaves nothing installed.
struct Installed;

impl Installed {
    fn is_installed() -> bool {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", PACKAGE])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
    }

    fn purge_command() -> Command {
        let mut purge = as_root(&["apt-get", "purge", "-y", "-q", PACKAGE]);
        purge.env("DEBIAN_FRONTEND", "noninteractive");
        purge
    }

    fn purge() -> String {
        run(&mut Self::purge_command())
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if Self::is_installed() {
            let _ = Self::purge_command().output();
        }
    }
}

/// A `/usr/sbin/policy-rc.d` that denies every start (exit 101, invoke-rc.d(8)), while
/// it lives. None when the host has a policy of its own, which is left alone.
struct PolicyDeniesStart;

impl PolicyDeniesStart {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn install() -> Option<Self> {
        if Path::new(Self::PATH).exists() {
            return None;
        }
        write_as_root(Self::PATH, "#!/bin/sh\nexit 101\n");
        run(&mut as_root(&["chmod", "0755", Self::PATH]));
        Some(Self)
    }
}

impl Drop for PolicyDeniesStart {
    fn drop(&mut self) {
        let _ = as_root(&["rm", "-f", Self::PATH]).status();
    }
}

/// A process started through [`as_root`], ended by its PID when dropped. Through
/// sudo, the process is sudo's child: that PID is the one signalled, as root.
struct Running {
    child: Child,
    pid: u32,
}

impl Running {
    fn start(cmd: &mut Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut pid = child.id();
        if !is_root() {
            let children = format!("/proc/{pid}/task/{pid}/children");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                let listed = std::fs::read_to_string(&children).unwrap_or_default();
                if let Some(first) = listed.split_whitespace().next() {
                    pid = first.parse().expect("a PID");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Self { child, pid }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = as_root(&["kill", "-TERM", &self.pid.to_string()]).status();
        let _ = self.child.wait();
    }
}

/// `stat` of a path as root (the configuration's directory is closed to others):
/// (mode, owner, group).
fn stat(path: &str) -> (u32, String, String) {
    let out = run(&mut as_root(&["stat", "-c", "%a %U %G", path]));
    let mut fields = out.split_whitespace();
    let mode = u32::from_str_radix(fields.next().expect("mode"), 8).expect("octal mode");
    (
        mode,
        fields.next().expect("owner").to_string(),
        fields.next().expect("group").to_string(),
    )
}

/// The settings of the installed unit's [Service] section that say how it starts.
struct UnitCommand {
    environment: Vec<String>,
    environment_files: Vec<String>,
    exec_start: String,
}

fn unit_command(unit: &str) -> UnitCommand {
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(str::to_string)
            .collect()
    };
    UnitCommand {
        environment: values("Environment="),
        // "-" marks an optional file.
        environment_files: values("EnvironmentFile=")
            .into_iter()
            .map(|f| f.trim_start_matches('-').to_string())
            .collect(),
        exec_start: values("ExecStart=").pop().expect("ExecStart="),
    }
}

#[test]
fn the_deb_installs_runs_as_its_user_and_purges_without_a_trace() {
    let Some(()) = privileged(&["apt-get", "dpkg-deb", "setpriv", "systemd-sysusers"]) else {
        return;
    };
    let Some(servers) = Servers::get() else {
        return;
    };
    let built = built();
    if Installed::is_installed() {
        // A previous run that was killed before its guard ran.
        Installed::purge();
    }
    let shipped: BTreeSet<String> = run(Command::new("dpkg-deb").arg("-c").arg(&built.deb))
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    let deb = expected(Family::Deb);
    let depends = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&built.deb)
        .arg("Depends"));
    assert_eq!(
        depends.trim(),
        "libc6 (>= 2.17), systemd | systemd-sysusers",
        "glibc 2.17 (the image test checks the binary's symbol versions), and the user's maker"
    );
    assert_eq!(
        shipped,
        deb.iter().map(|e| e.path.to_string()).collect(),
        "the .deb's files"
    );

    let _installed = Installed;
    {
        // On a host run by systemd the package would start its service, listening on
        // every interface: tell deb-systemd-invoke not to, for this install only.
        let _no_start = Path::new("/run/systemd/system")
            .exists()
            .then(PolicyDeniesStart::install);
        run(as_root(&[
            "apt-get",
            "install",
            "-y",
            "-q",
            built.deb.to_str().expect("utf-8 path"),
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    }

    // The system user: no login, no home of its own, a system uid.
    let passwd = run(Command::new("getent").args(["passwd", USER]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields[5], "/", "home: {passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "shell: {passwd}");
    assert!(fields[2].parse::<u32>().expect("uid") < 1000, "{passwd}");
    run(Command::new("getent").args(["group", USER]));

    for entry in &deb {
        let (mode, owner, group) = stat(entry.path);
        assert_eq!(
            (mode, owner.as_str(), group.as_str()),
            (entry.mode, "root", entry.group),
            "{}",
            entry.path
        );
    }
    assert_eq!(
        stat("/etc/session-exporter"),
        (0o750, "root".into(), USER.into())
    );
    // The session history's store is the service's own.
    assert_eq!(
        stat("/var/lib/session-exporter"),
        (0o750, USER.into(), USER.into())
    );
    let conffiles: BTreeSet<String> =
        run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]))
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
    assert_eq!(
        conffiles,
        deb.iter()
            .filter(|e| e.config)
            .map(|e| e.path.to_string())
            .collect(),
        "conffiles"
    );
    // Others cannot read the configuration (it may hold a password).
    let nobody = as_root(&[
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "cat",
        "/etc/session-exporter/config.yaml",
    ])
    .output()
    .expect("setpriv");
    assert!(!nobody.status.success(), "nobody read the configuration");

    let version = run(Command::new("/usr/bin/session_exporter").arg("--version"));
    assert!(
        version.starts_with(&format!("session_exporter {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // The packaged configuration is valid as shipped, and the man page and the
    // completions are what the binary generates.
    run(&mut as_root(&[
        "/usr/bin/session_exporter",
        "--config.check",
        "--config.file=/etc/session-exporter/config.yaml",
    ]));
    assert_eq!(
        run(Command::new("man").args(["-w", "session_exporter"])).trim(),
        "/usr/share/man/man1/session_exporter.1.gz"
    );
    let man = run(Command::new("zcat").arg("/usr/share/man/man1/session_exporter.1.gz"));
    assert!(man.contains(".TH session_exporter 1"), "{man}");
    assert!(man.contains("config.file"), "{man}");
    let complete = run(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/session_exporter && complete -p session_exporter",
    ]));
    assert!(complete.contains("session_exporter"), "{complete}");

    // The installed unit is the repository's, and systemd accepts it with the binary
    // it names in place.
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/session-exporter.service")
        .expect("the installed unit");
    assert_eq!(
        unit,
        std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/session-exporter.service"))
            .unwrap()
    );
    let verify = run(Command::new("sh").args([
        "-c",
        "systemd-analyze verify /usr/lib/systemd/system/session-exporter.service 2>&1",
    ]));
    assert!(!verify.contains("session-exporter.service"), "{verify}");

    // Configure it as an operator would (the file keeps its owner and mode) and run
    // the unit's command line as the unit does: as the service user, with its
    // Environment= and environment files, no privileges to gain. (There is no
    // systemd to start it on this machine.)
    write_as_root(
        "/etc/session-exporter/config.yaml",
        &targets_yaml(&servers, &servers.monitor_password()),
    );
    assert_eq!(stat("/etc/session-exporter/config.yaml").0, 0o640);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    write_as_root(
        "/etc/default/session-exporter",
        &format!("ARGS=\"--web.listen-address={addr} --log.level=debug\"\n"),
    );
    let command = unit_command(&unit);
    let sources: Vec<String> = command
        .environment_files
        .iter()
        .map(|f| format!("if [ -r {f} ]; then . {f}; fi;"))
        .collect();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let exporter = Running::start(
        as_root(&[
            "setpriv",
            "--reuid",
            USER,
            "--regid",
            USER,
            "--init-groups",
            "--no-new-privs",
            "env",
            "-i",
        ])
        .args(&command.environment)
        .args([
            "sh",
            "-c",
            &format!("set -a; {} exec {}", sources.join(" "), command.exec_start),
        ])
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log")),
    );
    let read_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let metrics = wait_until_all_up(&addr, read_log);
    let uid = fields[2];
    let status = std::fs::read_to_string(format!("/proc/{}/status", exporter.pid))
        .expect("the exporter's /proc status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid)),
        "not running as {USER} ({uid}):\n{status}"
    );
    assert!(
        metrics.text.contains("dbsession_exporter_build_info"),
        "{}",
        metrics.text
    );
    drop(exporter);

    // Purge: nothing the package added is left.
    Installed::purge();
    assert!(!Installed::is_installed());
    for path in &shipped {
        assert!(!Path::new(path).exists(), "{path} is left after purge");
    }
    for path in [
        "/etc/session-exporter",
        "/var/lib/session-exporter",
        "/etc/systemd/system/multi-user.target.wants/session-exporter.service",
        "/etc/systemd/system/session-exporter.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/session-exporter.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-masked/session-exporter.service",
    ] {
        assert!(!Path::new(path).exists(), "{path} is left after purge");
    }
    for database in ["passwd", "group"] {
        let left = Command::new("getent")
            .args([database, USER])
            .status()
            .expect("getent");
        assert!(!left.success(), "{USER} is left in {database}");
    }
    let overrides = run(&mut as_root(&["dpkg-statoverride", "--list"]));
    assert!(!overrides.contains("session-exporter"), "{overrides}");
}

#[test]
fn the_rpm_has_the_same_files_modes_and_scripts() {
    let Some(()) = privileged(&["rpm"]) else {
        return;
    };
    let built = built();
    let rpm = built.rpm.to_str().expect("utf-8 path");
    let listed: BTreeSet<String> = run(Command::new("rpm").args(["-qlp", rpm]))
        .lines()
        .map(str::to_string)
        .collect();
    let entries = expected(Family::Rpm);
    assert_eq!(
        listed,
        entries.iter().map(|e| e.path.to_string()).collect(),
        "rpm -qlp"
    );
    // mode, owner, group and the config/noreplace flags of every file.
    let dump = run(Command::new("rpm").args([
        "-qp",
        "--qf",
        "[%{FILEMODES:octal} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}. %{FILENAMES}\n]",
        rpm,
    ]));
    let files: BTreeMap<&str, Vec<&str>> = dump
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[4], fields[..4].to_vec())
        })
        .collect();
    for entry in &entries {
        let fields = &files[entry.path];
        let mode = u32::from_str_radix(fields[0], 8).expect("octal mode") & 0o7777;
        assert_eq!(
            (mode, fields[1], fields[2]),
            (entry.mode, "root", entry.group),
            "{}",
            entry.path
        );
        // c: %config, n: noreplace (upgrades keep a changed file).
        let flags = fields[3].trim_end_matches('.');
        assert_eq!(
            (flags.contains('c'), flags.contains('n')),
            (entry.config, entry.config),
            "{}: flags {flags}",
            entry.path
        );
    }

    // %pre makes the user from the very line the package installs for sysusers.d.
    let scripts = run(Command::new("rpm").args(["-qp", "--scripts", rpm]));
    let sysusers =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/session-exporter.sysusers"))
            .unwrap();
    let declaration = sysusers
        .lines()
        .find(|l| !l.starts_with('#'))
        .expect("the sysusers line");
    let pre = scripts
        .split("postinstall scriptlet")
        .next()
        .expect("a preinstall scriptlet");
    assert!(
        pre.contains("systemd-sysusers --replace=/usr/lib/sysusers.d/session-exporter.conf -")
            && pre.contains(declaration),
        "{scripts}"
    );
    for (scriptlet, says) in [
        (
            "postinstall",
            "chgrp session-exporter /etc/session-exporter",
        ),
        ("postinstall", "preset session-exporter.service"),
        ("preuninstall", "disable --now session-exporter.service"),
        ("postuninstall", "try-restart session-exporter.service"),
        ("postuninstall", "userdel session-exporter"),
        ("postuninstall", "groupdel session-exporter"),
        ("postuninstall", "rmdir /etc/session-exporter"),
    ] {
        let body = scripts
            .split(&format!("{scriptlet} scriptlet"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {scriptlet} scriptlet: {scripts}"));
        let body = body.split(" scriptlet").next().unwrap_or(body);
        assert!(
            body.contains(says),
            "{scriptlet} lacks {says:?}:\n{scripts}"
        );
    }
    // Every scriptlet is valid sh.
    for scriptlet in scripts.split("scriptlet (using /bin/sh):").skip(1) {
        let body: String = scriptlet
            .lines()
            .take_while(|l| !l.ends_with("scriptlet (using /bin/sh):"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut sh = Command::new("sh")
            .arg("-n")
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh -n");
        sh.stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write");
        assert!(sh.wait().expect("sh").success(), "not valid sh:\n{body}");
    }

    // Its dependencies are the libraries the binary links, found from the binary.
    let requires = run(Command::new("rpm").args(["-qp", "--requires", rpm]));
    assert!(requires.contains("libc.so.6()(64bit)"), "{requires}");
    assert!(!requires.contains("libz"), "{requires}");
    assert!(!requires.contains("GLIBC_2.18"), "{requires}");
    // An xz payload, which RHEL 8's rpm reads (not zstd, cargo-generate-rpm's default).
    assert!(!requires.contains("PayloadIsZstd"), "{requires}");
    let info = run(Command::new("rpm").args(["-qip", rpm]));
    assert!(info.contains("Apache-2.0"), "{info}");
    assert!(built.binary.exists());
}
