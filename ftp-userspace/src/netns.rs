//! The network namespace ftpct runs in. Interface names and ifindexes only
//! mean something inside one namespace, so pins are kept per namespace,
//! keyed by its nsfs inode (the number in `/proc/PID/ns/net` ->
//! `net:[INODE]`, as `lsns` and `ip netns identify` know it).

use std::{fs, os::unix::fs::MetadataExt as _, path::Path};

use anyhow::{Context as _, Result};

/// Where `ip netns add` bind-mounts named namespaces.
const NAMED_NETNS_DIR: &str = "/run/netns";

/// A network namespace, identified by its nsfs device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Netns {
    /// nsfs inode number.
    pub inode: u64,
    dev: u64,
}

impl Netns {
    /// The namespace of the calling thread (`setns` is per thread).
    pub fn current() -> Result<Self> {
        let path = "/proc/thread-self/ns/net";
        let meta = fs::metadata(path)
            .with_context(|| format!("finding this process's network namespace ({path})"))?;
        Ok(Self {
            inode: meta.ino(),
            dev: meta.dev(),
        })
    }

    /// The pin directory name under the pin root, `net<INODE>`.
    pub fn dir_name(&self) -> String {
        dir_name(self.inode)
    }

    /// The name `ip netns` knows it by when one of `/run/netns/*` is bound
    /// to it, else `net:[INODE]`.
    pub fn display_name(&self) -> String {
        self.bound_name(Path::new(NAMED_NETNS_DIR))
            .unwrap_or_else(|| format!("net:[{}]", self.inode))
    }

    fn bound_name(&self, dir: &Path) -> Option<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|entry| {
                // stat follows the bind mount to the namespace; an unmounted
                // leftover file is on tmpfs and matches nothing.
                fs::metadata(entry.path())
                    .is_ok_and(|m| m.ino() == self.inode && m.dev() == self.dev)
            })
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.into_iter().next()
    }
}

/// `net<INODE>`: the pin directory of the namespace with that nsfs inode.
pub fn dir_name(inode: u64) -> String {
    format!("net{inode}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_is_net_and_the_inode() {
        assert_eq!(dir_name(4026531840), "net4026531840");
    }

    #[test]
    fn current_namespace_matches_proc_link() {
        let ns = Netns::current().expect("current netns");
        let link = fs::read_link("/proc/self/ns/net").expect("readlink");
        assert_eq!(link.to_string_lossy(), format!("net:[{}]", ns.inode));
        assert_eq!(ns.dir_name(), format!("net{}", ns.inode));
    }

    #[test]
    fn display_name_prefers_a_bound_name() {
        let ns = Netns::current().expect("current netns");
        let dir = std::env::temp_dir().join(format!("ftpct-netns-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        // Not bind mounts: files whose inode is not the namespace's.
        fs::write(dir.join("other"), b"").expect("write");
        assert_eq!(ns.bound_name(&dir), None);
        assert_eq!(ns.bound_name(&dir.join("missing")), None);
        // What stat sees through a bind mount; a symlink needs no root.
        std::os::unix::fs::symlink("/proc/self/ns/net", dir.join("mine")).expect("symlink");
        assert_eq!(ns.bound_name(&dir).as_deref(), Some("mine"));
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
