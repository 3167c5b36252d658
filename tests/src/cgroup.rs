//! cgroup v2 directories for simulated nodes and pods.
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// cgroup id (inode number of the directory).
pub fn cgroup_id(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
}

/// Whether any process is in `path` or below (`cgroup.events: populated 1`).
pub fn populated(path: &Path) -> bool {
    std::fs::read_to_string(path.join("cgroup.events"))
        .map(|s| s.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Kills every process in `path` and below (`cgroup.kill`, Linux >= 5.14; falls back to
/// SIGKILL per pid) and waits up to 2 s until the cgroup is empty.
pub fn kill_all(path: &Path) {
    if !path.exists() {
        return;
    }
    if std::fs::write(path.join("cgroup.kill"), "1").is_err() {
        kill_pids_recursive(path);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while populated(path) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill_pids_recursive(path: &Path) {
    if let Ok(procs) = std::fs::read_to_string(path.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                kill_pids_recursive(&e.path());
            }
        }
    }
}

/// Kills everything in `path` and removes it and its child cgroups (deepest first).
pub fn remove_tree(path: &Path) {
    if !path.exists() {
        return;
    }
    kill_all(path);
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        match std::fs::remove_dir(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
