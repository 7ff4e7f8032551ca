//! The Debian LTS kernels ftpct is proven on, and fetching them into
//! `<cache>/kernels/<name>/`: the newest matching unsigned image package is
//! downloaded with apt through a private sources list and state directory
//! (the machine's apt configuration and lists are never touched), unpacked
//! with `dpkg-deb -x`, and its modules indexed with `depmod` (Debian ships no
//! `modules.dep`). A stamp names the package taken; a directory with a stamp
//! is used as it is, so delete it to take a newer kernel.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{cmd, setup};

/// One kernel of the matrix.
#[derive(Debug)]
pub struct Kernel {
    /// Short name (`--kernel NAME`, the cache directory).
    pub name: &'static str,
    /// Upstream series; the package's ABI name starts with it.
    series: &'static str,
    /// apt source lines (one-line style) the package is taken from.
    sources: &'static [&'static str],
    /// `Some(text)`: ftpct is expected to refuse this kernel, with a line
    /// containing `text`; a group failing that way counts as refused.
    pub refusal: Option<&'static str>,
}

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The matrix: Debian 12's kernel, its backported one, and Debian 11's
/// (a stretch: no `bpf_loop` before 5.17, so ftpct must refuse it clearly).
pub const KERNELS: [Kernel; 3] = [
    Kernel {
        name: "6.1",
        series: "6.1",
        sources: &[
            "http://deb.debian.org/debian bookworm main",
            "http://deb.debian.org/debian-security bookworm-security main",
        ],
        refusal: None,
    },
    Kernel {
        name: "6.12",
        series: "6.12",
        sources: &["http://deb.debian.org/debian bookworm-backports main"],
        refusal: None,
    },
    Kernel {
        name: "5.10",
        series: "5.10",
        sources: &[
            "http://deb.debian.org/debian bullseye main",
            "http://deb.debian.org/debian-security bullseye-security main",
        ],
        refusal: Some("5.17"),
    },
];

/// The kernel called `name`.
pub fn find(name: &str) -> Result<&'static Kernel> {
    KERNELS.iter().find(|k| k.name == name).with_context(|| {
        let names: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        format!("unknown kernel {name:?} (known: {})", names.join(", "))
    })
}

/// A kernel unpacked in the cache.
#[derive(Debug)]
pub struct Fetched {
    /// The unpacked package (`boot/`, `lib/modules/<release>/`).
    pub dir: PathBuf,
    /// The release (`uname -r`), e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// The package and version taken, from the stamp.
    pub package: String,
}

impl Fetched {
    /// The kernel image.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join(format!("boot/vmlinuz-{}", self.release))
    }

    /// `lib/modules/<release>` of the unpacked package.
    pub fn modules(&self) -> PathBuf {
        self.dir.join("lib/modules").join(&self.release)
    }
}

/// Name of the stamp file inside a kernel directory.
const STAMP: &str = "ftpct-kernel.stamp";

/// Fetches `kernel` unless its directory is complete; returns where it is.
pub fn fetch(kernel: &Kernel) -> Result<Fetched> {
    let root = setup::cache_dir().join("kernels");
    let dir = root.join(kernel.name);
    if let Ok(package) = fs::read_to_string(dir.join(STAMP)) {
        return unpacked(&dir, package.trim());
    }
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let work = root.join(format!(".fetch-{}", kernel.name));
    let _ = fs::remove_dir_all(&work);
    let result = download(kernel, &work, &dir);
    let _ = fs::remove_dir_all(&work);
    result.with_context(|| format!("fetching the {} kernel", kernel.name))
}

/// Downloads, unpacks and indexes the newest package into `dir`, through
/// `work` (apt state, download, the partial tree).
fn download(kernel: &Kernel, work: &Path, dir: &Path) -> Result<Fetched> {
    let apt = PrivateApt::new(&work.join("apt"), kernel.sources)?;
    cmd::run(apt.command("apt-get").args(["update", "-qq"]))?;
    let names = cmd::output(apt.command("apt-cache").args(["pkgnames", "linux-image-"]))
        .context("listing linux-image packages")?;
    let package = newest_image(kernel.series, names.lines()).with_context(|| {
        format!(
            "no linux-image-{}*-amd64-unsigned in the lists",
            kernel.series
        )
    })?;
    let debs = work.join("debs");
    fs::create_dir_all(&debs)?;
    cmd::run(
        apt.command("apt-get")
            .current_dir(&debs)
            .args(["download", "-qq", &package]),
    )?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let version = cmd::output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))
        .with_context(|| format!("reading the version of {}", deb.display()))?;
    let tree = work.join("tree");
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    let release = release_of(&tree)?;
    cmd::run(
        Command::new("/sbin/depmod")
            .arg("-b")
            .arg(&tree)
            .arg(&release),
    )?;
    fs::write(tree.join(STAMP), format!("{package} {version}\n"))?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::rename(&tree, dir).with_context(|| format!("moving the kernel to {}", dir.display()))?;
    eprintln!("xtask: kernel {} is {package} {version}", kernel.name);
    unpacked(dir, &format!("{package} {version}"))
}

/// A complete kernel directory: one release under `lib/modules`, its image
/// and `modules.dep`.
fn unpacked(dir: &Path, package: &str) -> Result<Fetched> {
    let fetched = Fetched {
        dir: dir.to_path_buf(),
        release: release_of(dir)?,
        package: package.to_string(),
    };
    for needed in [fetched.vmlinuz(), fetched.modules().join("modules.dep")] {
        if !needed.exists() {
            bail!(
                "{} is missing (remove {} to fetch again)",
                needed.display(),
                dir.display()
            );
        }
    }
    Ok(fetched)
}

/// The single release directory under `<tree>/lib/modules`.
fn release_of(tree: &Path) -> Result<String> {
    let modules = tree.join("lib/modules");
    let releases: Vec<String> = fs::read_dir(&modules)
        .with_context(|| format!("reading {}", modules.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match releases.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "want one release in {}, found {releases:?}",
            modules.display()
        ),
    }
}

/// The newest plain `linux-image-<series>...-amd64-unsigned` among `names`
/// (not the cloud or rt flavours): `6.1` matches `6.1.0-57`, not `6.12.9`.
fn newest_image<'a>(series: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    names
        .filter_map(|name| {
            let abi = name
                .strip_prefix("linux-image-")?
                .strip_suffix("-amd64-unsigned")?;
            let rest = abi.strip_prefix(series)?;
            let plain = rest.starts_with(['.', '-'])
                && abi
                    .rsplit('-')
                    .next()
                    .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_digit()));
            plain.then(|| (version_key(abi), name.to_string()))
        })
        .max()
        .map(|(_, name)| name)
}

/// The numbers in an ABI name, in order, for comparing versions.
fn version_key(abi: &str) -> Vec<u64> {
    abi.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// apt with its own sources, lists and cache under one directory.
struct PrivateApt {
    options: Vec<String>,
}

impl PrivateApt {
    fn new(dir: &Path, sources: &[&str]) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let list = dir.join("sources.list");
        let lines: Vec<String> = sources
            .iter()
            .map(|s| format!("deb [signed-by={KEYRING}] {s}\n"))
            .collect();
        fs::write(&list, lines.concat()).with_context(|| format!("writing {}", list.display()))?;
        let options = [
            format!("Dir::Etc::sourcelist={}", list.display()),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!("Dir::Cache={}", dir.join("cache").display()),
            // Only the package lists: no translations, no AppStream data.
            "Acquire::Languages=none".to_string(),
            // The private directories are root's; apt's _apt user cannot write them.
            "APT::Sandbox::User=root".to_string(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_string(),
        ];
        Ok(Self {
            options: options
                .iter()
                .flat_map(|o| ["-o".to_string(), o.clone()])
                .collect(),
        })
    }

    /// `program` (apt-get, apt-cache) with the private options.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.options);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::newest_image;

    #[test]
    fn newest_plain_image_of_the_series() {
        let names = [
            "linux-image-6.1.0-9-amd64-unsigned",
            "linux-image-6.1.0-57-amd64-unsigned",
            "linux-image-6.1.0-57-cloud-amd64-unsigned",
            "linux-image-6.1.0-58-rt-amd64-unsigned",
            "linux-image-6.12.9+bpo-amd64-unsigned",
            "linux-image-6.12.95+deb12-amd64-unsigned",
            "linux-image-6.12.95+deb12-cloud-amd64-unsigned",
            "linux-image-6.1.0-60-amd64-unsigned-dbg",
            "linux-image-amd64",
        ];
        let newest = |series| newest_image(series, names.iter().copied());
        assert_eq!(
            newest("6.1").as_deref(),
            Some("linux-image-6.1.0-57-amd64-unsigned")
        );
        assert_eq!(
            newest("6.12").as_deref(),
            Some("linux-image-6.12.95+deb12-amd64-unsigned")
        );
        assert_eq!(newest("5.10"), None);
    }
}
