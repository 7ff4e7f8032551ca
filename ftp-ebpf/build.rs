//! Rebuild when bpf-linker changes, and keep the parser entry points global so
//! the kernel verifies them once instead of at every call site.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => {
            println!("cargo:warning=bpf-linker not found on PATH ({err}); run `cargo xtask setup`")
        }
    }
    println!(
        "cargo:rustc-link-arg-bins=--export=ftpct_feed_command,ftpct_feed_reply,ftpct_on_line,ftpct_render_byte,ftpct_rewrite_reset,ftpct_rewrite_layout,ftpct_nat_write,ftpct_withdraw_all"
    );
}
