//! Builds the eBPF object (`ftp-ebpf`) with the nightly toolchain through
//! aya-build; `src/loader.rs` embeds it.
fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../ftp-ebpf");
    let package = aya_build::Package {
        name: "ftp-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
