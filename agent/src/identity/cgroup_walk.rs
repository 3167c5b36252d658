//! cgroup id → cgroup path, by walking a cgroup v2 hierarchy.
//!
//! On cgroup v2 the id reported by `bpf_get_current_cgroup_id()` is the kernfs node id, which
//! `stat()` shows as the inode number of the cgroup directory (kernel `kernfs_gen_ino`,
//! 64-bit ino on 64-bit hosts). Ids are not reused while the kernel runs.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Deepest directory level walked below the root.
const MAX_DEPTH: usize = 32;

/// Maps cgroup ids to paths relative to `root` (leading `/`; the root itself is `/`).
/// Caches every id seen by the last walk; a miss re-walks the hierarchy once.
/// Concurrent misses share one walk: a caller that waited for the walk lock does not walk
/// again if a walk started after it arrived.
pub struct CgroupPaths {
    root: PathBuf,
    cache: Mutex<HashMap<u64, String>>,
    /// Start time of the last walk.
    walk: Mutex<Option<Instant>>,
}

impl CgroupPaths {
    /// `root`: mount point of the cgroup v2 hierarchy (e.g. `/sys/fs/cgroup`, or
    /// `/sys/fs/cgroup/unified` on hybrid hosts).
    pub fn new(root: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            root: root.into(),
            cache: Mutex::new(HashMap::new()),
            walk: Mutex::new(None),
        })
    }

    /// The hierarchy root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn cached(&self, id: u64) -> Option<String> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Path of cgroup `id`, or `None` if no directory under the root has that inode.
    /// Blocking (filesystem walk on a miss): call from `spawn_blocking`, or use
    /// [`Self::path_of`].
    pub fn path_of_blocking(&self, id: u64) -> std::io::Result<Option<String>> {
        if let Some(p) = self.cached(id) {
            return Ok(Some(p));
        }
        let arrived = Instant::now();
        let mut last = self.walk.lock().unwrap_or_else(|e| e.into_inner());
        // Another caller may have walked while we waited.
        if let Some(p) = self.cached(id) {
            return Ok(Some(p));
        }
        if last.is_some_and(|t| t >= arrived) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        let fresh = walk(&self.root)?;
        let found = fresh.get(&id).cloned();
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(found)
    }

    /// Async wrapper of [`Self::path_of_blocking`].
    pub async fn path_of(self: &Arc<Self>, id: u64) -> std::io::Result<Option<String>> {
        if let Some(p) = self.cached(id) {
            return Ok(Some(p));
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.path_of_blocking(id))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Walk `root`, returning inode → relative path for every directory.
fn walk(root: &Path) -> std::io::Result<HashMap<u64, String>> {
    let mut out = HashMap::new();
    out.insert(std::fs::metadata(root)?.ino(), "/".to_string());
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            continue;
        }
        // A cgroup removed during the walk is not an error.
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = format!("{rel}/{name}");
            out.insert(meta.ino(), child_rel.clone());
            stack.push((entry.path(), child_rel, depth + 1));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_plain_tree_and_refreshes_on_miss() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("kubepods/burstable/podx");
        std::fs::create_dir_all(&a).unwrap();
        let paths = CgroupPaths::new(t.path());
        let ino = std::fs::metadata(&a).unwrap().ino();
        assert_eq!(
            paths.path_of_blocking(ino).unwrap().as_deref(),
            Some("/kubepods/burstable/podx")
        );
        let b = t.path().join("kubepods/new");
        std::fs::create_dir_all(&b).unwrap();
        let ino_b = std::fs::metadata(&b).unwrap().ino();
        assert_eq!(
            paths.path_of_blocking(ino_b).unwrap().as_deref(),
            Some("/kubepods/new")
        );
        assert_eq!(paths.path_of_blocking(u64::MAX).unwrap(), None);
    }

    /// A real cgroup v2 directory: its inode is the id the kernel reports.
    #[test]
    fn walks_real_cgroup2() {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| {
                nix::sys::statfs::statfs(*p)
                    .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
                    .unwrap_or(false)
            })
            .expect("a cgroup v2 hierarchy is mounted");
        let name = format!("podiam-test-walk-{}", std::process::id());
        let dir = root.join(&name).join("kubepods");
        std::fs::create_dir_all(&dir).expect("creating a cgroup needs root");
        let ino = std::fs::metadata(&dir).unwrap().ino();
        let handle_id = kernfs_handle_id(&dir);
        let paths = CgroupPaths::new(root);
        let got = paths.path_of_blocking(ino);
        // Clean up before asserting (cgroup dirs are removed with rmdir, leaf first).
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_dir(root.join(&name));
        assert_eq!(got.unwrap(), Some(format!("/{name}/kubepods")));
        // The kernel's cgroup id (kernfs node id, what bpf_get_current_cgroup_id returns and
        // what name_to_handle_at encodes) is the directory's inode number.
        assert_eq!(handle_id, Some(ino));
    }

    /// The 8-byte kernfs file handle of a cgroup directory, as a u64 (native endian).
    fn kernfs_handle_id(path: &Path) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        #[repr(C)]
        struct Handle {
            bytes: u32,
            kind: i32,
            data: [u8; 16],
        }
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut h = Handle {
            bytes: 16,
            kind: 0,
            data: [0; 16],
        };
        let mut mount_id: libc::c_int = 0;
        // SAFETY: `h` is a file_handle with room for 16 bytes of f_handle; `c` is a valid
        // NUL-terminated path; `mount_id` is a valid out pointer.
        let rc = unsafe {
            libc::name_to_handle_at(
                libc::AT_FDCWD,
                c.as_ptr(),
                (&mut h as *mut Handle).cast(),
                &mut mount_id,
                0,
            )
        };
        if rc != 0 || h.bytes != 8 {
            return None;
        }
        Some(u64::from_ne_bytes(h.data[..8].try_into().ok()?))
    }
}
