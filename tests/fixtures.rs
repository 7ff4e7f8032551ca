//! The directory tree every FTP server serves, and content digests.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A small text file at the served root.
pub const SMALL_FILE: &str = "small.txt";

/// Contents of [`SMALL_FILE`].
pub const SMALL_CONTENT: &[u8] = b"hello from ftpct lab\n";

/// A large file at the served root (deterministic pseudo-random bytes).
pub const BIG_FILE: &str = "big.bin";

/// Size of [`BIG_FILE`]: 2 MiB.
pub const BIG_LEN: usize = 2 * 1024 * 1024;

/// Directory (relative to the served root) where uploads are allowed.
pub const UPLOAD_DIR: &str = "upload";

/// Length and SHA-256 of some content; compare a download with the
/// server-side file with `==`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    /// Length in bytes.
    pub len: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl FileDigest {
    /// Digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self {
            len: data.len() as u64,
            sha256: sha256_hex(data),
        }
    }

    /// Digest of the file at `path`.
    pub fn of_file(path: &Path) -> Result<Self> {
        let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::of(&data))
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes sha256={}", self.len, self.sha256)
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` deterministic pseudo-random bytes (xorshift64*, seeded by `seed`).
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A temporary directory holding a server's working files (configuration,
/// logs) and, under `root/`, the served tree:
///
/// ```text
/// root/            0755, owned by root, not writable by the FTP user
///   small.txt      SMALL_CONTENT
///   big.bin        BIG_LEN pseudo-random bytes
///   upload/        owned by the upload user, writable
/// ```
///
/// Everything is removed on drop.
pub struct ServedTree {
    dir: TempDir,
    root: PathBuf,
}

impl ServedTree {
    /// Creates the tree; `upload/` is chowned to `upload_owner` (uid, gid).
    pub fn create(upload_owner: (u32, u32)) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ftpct-lab-")
            .tempdir()
            .context("creating temp dir")?;
        set_mode(dir.path(), 0o755)?;
        let root = dir.path().join("root");
        let upload = root.join(UPLOAD_DIR);
        fs::create_dir_all(&upload).context("creating served tree")?;
        set_mode(&root, 0o755)?;
        write_file(&root.join(SMALL_FILE), SMALL_CONTENT)?;
        write_file(
            &root.join(BIG_FILE),
            &pseudo_random_bytes(BIG_LEN, 0x00f7_9c7e),
        )?;
        std::os::unix::fs::chown(&upload, Some(upload_owner.0), Some(upload_owner.1))
            .with_context(|| format!("chown {}", upload.display()))?;
        set_mode(&upload, 0o755)?;
        Ok(Self { dir, root })
    }

    /// The served directory (what the FTP client sees as `/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory for the server's configuration and logs (outside `root`).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of `rel` (e.g. `"upload/x.bin"`) under the served root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Digest of the served file `rel`.
    pub fn digest(&self, rel: &str) -> Result<FileDigest> {
        FileDigest::of_file(&self.path(rel))
    }
}

/// Writes `data` to `path` with mode 0644.
fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, 0o644)
}

/// chmod.
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}
