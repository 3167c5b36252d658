//! Removes what earlier test processes left behind when they were killed before their
//! `Drop`s ran (SIGKILL, abort): netns, cgroups and pin dirs named `podiam-test-<pid>-…`
//! whose `<pid>` no longer runs.
use std::path::Path;

/// The pid in `podiam-test-<pid>-…`, if `name` has that shape.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix("podiam-test-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn is_stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Cleans up stale test resources once per process (called by `Node::new`).
pub fn cleanup_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(root) = podiam::datapath::find_cgroup2_root()
            && let Ok(rd) = std::fs::read_dir(&root)
        {
            for e in rd.flatten() {
                if is_stale(&e.file_name().to_string_lossy()) {
                    crate::cgroup::remove_tree(&e.path());
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir("/sys/fs/bpf") {
            for e in rd.flatten() {
                if is_stale(&e.file_name().to_string_lossy()) {
                    let _ = podiam::datapath::Datapath::uninstall(&e.path());
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_stale(&name) {
                    let _ = crate::netns::ip(&["netns", "del", &name]);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(owner_pid("podiam-test-123-4-node"), Some(123));
        assert_eq!(owner_pid("podiam-test-123-4"), Some(123));
        assert_eq!(owner_pid("podiam-smoke"), None);
        assert_eq!(owner_pid("podiam-test-x-1"), None);
        assert!(!is_stale(&format!("podiam-test-{}-0", std::process::id())));
    }
}
