//! The image: built with podman on a base made locally by mmdebstrap, run read-only
//! as non-root against every test server.

use super::*;

/// Removes the images and the container this test made, when dropped.
struct Podman {
    images: Vec<String>,
    container: String,
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.container]).output();
        for image in &self.images {
            let _ = podman(&["rmi", "--force", image]).output();
        }
    }
}

/// Rootful podman (what the recipe below was verified with), through [`as_root`].
fn podman(args: &[&str]) -> Command {
    let mut all = vec!["podman"];
    all.extend_from_slice(args);
    as_root(&all)
}

/// A Debian bookworm minbase root file system (glibc, CA certificates), made once by
/// mmdebstrap and kept in Cargo's test scratch directory: a file, not an image.
fn bookworm_rootfs() -> PathBuf {
    let tar = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bookworm-minbase.tar");
    if !tar.exists() {
        let partial = tar.with_extension("partial.tar");
        run(as_root(&[
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--include=ca-certificates",
            "bookworm",
            partial.to_str().expect("utf-8 path"),
        ])
        .stderr(Stdio::inherit()));
        std::fs::rename(&partial, &tar).expect("keep the root file system");
    }
    tar
}

#[test]
fn the_image_runs_read_only_as_non_root_and_sees_every_server() {
    let Some(()) = privileged(&["podman", "runc", "mmdebstrap", "readelf"]) else {
        return;
    };
    let Some(servers) = Servers::get() else {
        return;
    };
    let built = built();

    // The binary needs no library that distroless' cc image (the default base) or
    // an old glibc host lacks, and no glibc newer than 2.17 (CentOS 7, RHEL 8).
    let dynamic = run(Command::new("readelf").arg("-d").arg(&built.binary));
    let needed: BTreeSet<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    let glibc = BTreeSet::from([
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libdl.so.2",
        "libgcc_s.so.1",
        "libm.so.6",
        "libpthread.so.0",
    ]);
    assert!(
        needed.is_subset(&glibc),
        "the binary needs {needed:?}, beyond {glibc:?}"
    );
    let versions = run(Command::new("readelf").arg("-V").arg(&built.binary));
    let newest = versions
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let (major, minor) = v.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        })
        .max()
        .expect("glibc symbol versions");
    assert!(newest <= (2, 17), "needs glibc {newest:?}");

    let run_id = std::process::id();
    let base = format!("localhost/session-exporter-it-base:{run_id}");
    let image = format!("localhost/session-exporter-it:{run_id}");
    let guard = Podman {
        images: vec![image.clone(), base.clone()],
        container: format!("session-exporter-it-{run_id}"),
    };
    run(&mut podman(&[
        "import",
        bookworm_rootfs().to_str().expect("utf-8 path"),
        &base,
    ]));
    // The repository is the context (.dockerignore lets only the binary through).
    run(podman(&[
        "build",
        "--file",
        "deploy/docker/Dockerfile",
        "--tag",
        &image,
        &format!("--build-arg=BASE={base}"),
        ".",
    ])
    .current_dir(ROOT));
    let user = run(&mut podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        &image,
    ]));
    assert_eq!(user.trim(), "65532:65532");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, targets_yaml(&servers, &servers.monitor_password()))
        .expect("write config");
    // Readable by the container's user (the file alone is mounted).
    run(Command::new("chmod").arg("0644").arg(&config));
    let addr = format!("127.0.0.1:{}", free_port());
    // This machine's podman: runc, because crun refuses its hybrid cgroups; cgroupfs,
    // as no systemd runs here; explicit --ulimit, because raising the limits to
    // podman's defaults is not permitted (no CAP_SYS_RESOURCE). The host's network,
    // so the container reaches the test servers on loopback.
    let volume = format!("{}:/etc/session-exporter/config.yaml:ro", config.display());
    let listen = format!("--web.listen-address={addr}");
    run(&mut podman(&[
        "--runtime",
        "runc",
        "--cgroup-manager=cgroupfs",
        "run",
        "--detach",
        "--name",
        &guard.container,
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--network=host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--volume",
        &volume,
        &image,
        "--config.file=/etc/session-exporter/config.yaml",
        &listen,
    ]));
    let logs = || {
        podman(&["logs", &guard.container])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    };
    wait_until_all_up(&addr, logs);

    let inspect = run(&mut podman(&[
        "inspect",
        "--format",
        "{{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}",
        &guard.container,
    ]));
    let mut fields = inspect.split_whitespace();
    let pid = fields.next().expect("pid");
    assert_eq!(fields.next(), Some("true"), "read-only root: {inspect}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    for id in ["Uid:", "Gid:"] {
        let line = status.lines().find(|l| l.starts_with(id)).expect(id);
        assert!(
            line.split_whitespace().skip(1).all(|v| v == "65532"),
            "{line}"
        );
    }
    drop(guard);
    let left = run(&mut podman(&["images", "--format", "{{.Repository}}"]));
    assert!(!left.contains("session-exporter-it"), "{left}");
}
