//! Bad input and missing privileges give one clear error line.
use podiam::datapath::{Datapath, DatapathError};
use podiam_tests::{Node, require_privileged};

/// Runs the CLI, expects failure, returns stderr (which must be exactly one line).
fn cli_error(args: &[&str], as_nobody: bool) -> String {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap());
    cmd.args(args);
    if as_nobody {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one error line: {stderr:?}"
    );
    stderr
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    require_privileged();
    let node = Node::new().unwrap();
    let pin = node.pin_dir().to_str().unwrap().to_string();
    let cgroup = node.cgroup().to_str().unwrap().to_string();
    let missing = format!("{cgroup}/does-not-exist");

    let e = cli_error(
        &[
            "datapath-attach",
            "--cgroup",
            &missing,
            "--pin-dir",
            &pin,
            "--redirect-v4",
            "10.200.0.1:8181",
        ],
        false,
    );
    assert!(
        e.contains(&format!("cgroup {missing} does not exist")),
        "{e}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let not_bpffs = tmp.path().join("pins");
    let e = cli_error(
        &[
            "datapath-attach",
            "--cgroup",
            &cgroup,
            "--pin-dir",
            not_bpffs.to_str().unwrap(),
            "--redirect-v4",
            "10.200.0.1:8181",
        ],
        false,
    );
    assert!(e.contains("is not on a bpffs mount"), "{e}");
    assert!(!not_bpffs.exists());

    let e = cli_error(
        &[
            "datapath-attach",
            "--cgroup",
            &cgroup,
            "--pin-dir",
            &pin,
            "--redirect-v4",
            "10.200.0.1:8181",
        ],
        true,
    );
    assert!(
        e.contains("not running as root (CAP_BPF/CAP_SYS_ADMIN needed)"),
        "{e}"
    );
    assert!(
        !node.pin_dir().exists(),
        "nothing pinned by a failed attach"
    );

    // doctor names each missing thing on its own line.
    let out = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap())
        .args([
            "doctor",
            "--cgroup",
            &missing,
            "--pin-dir",
            not_bpffs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{text}");
    assert!(
        fails[0].contains(&format!("cgroup {missing} does not exist")),
        "{text}"
    );
    assert!(fails[1].contains("is not on a bpffs mount"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok   kernel")), "{text}");

    // As nobody, doctor names the missing privileges.
    let out = {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap());
        cmd.arg("doctor");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l == "FAIL privileges: not running as root (CAP_BPF/CAP_SYS_ADMIN needed)"),
        "{text}"
    );

    // The library reports the same errors as typed values.
    let mut cfg = node.datapath_config().unwrap();
    cfg.cgroup = missing.clone().into();
    assert!(matches!(
        Datapath::attach(&cfg),
        Err(DatapathError::CgroupNotFound(_))
    ));
    let mut cfg = node.datapath_config().unwrap();
    cfg.pin_dir = not_bpffs.clone();
    assert!(matches!(
        Datapath::attach(&cfg),
        Err(DatapathError::PinDirNotBpffs(_))
    ));
    let mut cfg = node.datapath_config().unwrap();
    cfg.redirect_v4 = "0.0.0.0:8181".parse().unwrap();
    assert!(matches!(
        Datapath::attach(&cfg),
        Err(DatapathError::InvalidConfig(_))
    ));
}
