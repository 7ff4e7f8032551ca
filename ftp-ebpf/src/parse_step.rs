//! The parser's per-byte step as global BPF functions.
//!
//! The kernel verifies a global function once, on its own, with arbitrary
//! arguments, and then treats each call as a single instruction. Inlined into
//! the `bpf_loop` callback the parser's branches multiply with the caller's
//! states past the verifier's budget; as global functions they do not.
//! `build.rs` exports these symbols so bpf-linker keeps them global.

use ftp_ebpf_common::parser::{Direction, LineParser};

/// Feeds one client-to-server byte; returns 1 when a command line completed.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_feed_command(parser: *mut LineParser, byte: u32, max_line: u32) -> i32 {
    // SAFETY: the verifier checks every access through `parser` against the
    // size of LineParser (from BTF); a null pointer is handled.
    match unsafe { parser.as_mut() } {
        Some(p) => p.feed(byte as u8, Direction::ClientToServer, max_line as u16) as i32,
        None => 0,
    }
}

/// Feeds one server-to-client byte; returns 1 when a reply completed.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_feed_reply(parser: *mut LineParser, byte: u32, max_line: u32) -> i32 {
    // SAFETY: as above.
    match unsafe { parser.as_mut() } {
        Some(p) => p.feed(byte as u8, Direction::ServerToClient, max_line as u16) as i32,
        None => 0,
    }
}
