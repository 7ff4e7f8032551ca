//! ftpct's data path: an XDP program on ingress and a TC program on egress of
//! the same interface, sharing maps.
//!
//! Every packet reads top to bottom: parse headers → classify ports →
//! (control payload → parser → expectation) or (inbound to a guarded port →
//! flow / expectation lookup → pass or drop) → count.
#![no_std]
#![no_main]

mod addr;
mod bounce;
mod clients;
mod conntrack;
mod control;
mod counters;
mod egress;
mod events;
mod expectations;
mod external;
mod flow_memo;
mod ftps;
mod headers;
mod ingress;
mod maps;
mod packet;
mod parse_step;
mod port_window;
mod reference;
mod shared;
mod tls;

use aya_ebpf::{
    macros::{classifier, tracepoint, uprobe, uretprobe, xdp},
    programs::{ProbeContext, RetProbeContext, TcContext, TracePointContext, XdpContext},
};
use ftp_ebpf_common::tls::tls_op;

/// Ingress: parses control traffic and admits or drops inbound connections to
/// guarded ports.
#[xdp]
pub fn ftpct_ingress(ctx: XdpContext) -> u32 {
    ingress::run(&ctx)
}

/// Egress: parses control traffic the local host sends, follows the local end
/// of tracked flows and records the connections it opens. Drops only the
/// host's SYNs to endpoints a refused `PORT`/`EPRT` named (FTP bounce).
#[classifier]
pub fn ftpct_egress(ctx: TcContext) -> i32 {
    egress::run(&ctx)
}

/// FTPS inspection (`tls`): entry of `SSL_read`.
#[uprobe]
pub fn ftpct_tls_read(ctx: ProbeContext) -> u32 {
    tls::enter(&ctx, tls_op::READ)
}

/// Entry of `SSL_read_ex`.
#[uprobe]
pub fn ftpct_tls_read_ex(ctx: ProbeContext) -> u32 {
    tls::enter(&ctx, tls_op::READ_EX)
}

/// Entry of `SSL_write` and `SSL_write_ex`.
#[uprobe]
pub fn ftpct_tls_write(ctx: ProbeContext) -> u32 {
    tls::enter(&ctx, tls_op::WRITE)
}

/// Entry of `SSL_peek`, `SSL_peek_ex` and `SSL_do_handshake`.
#[uprobe]
pub fn ftpct_tls_other(ctx: ProbeContext) -> u32 {
    tls::enter(&ctx, tls_op::OTHER)
}

/// Return of `SSL_read`.
#[uretprobe]
pub fn ftpct_tls_read_ret(ctx: RetProbeContext) -> u32 {
    tls::read_return(&ctx, false)
}

/// Return of `SSL_read_ex`.
#[uretprobe]
pub fn ftpct_tls_read_ex_ret(ctx: RetProbeContext) -> u32 {
    tls::read_return(&ctx, true)
}

/// Return of the other probed calls.
#[uretprobe]
pub fn ftpct_tls_call_ret(ctx: RetProbeContext) -> u32 {
    tls::call_return(&ctx)
}

/// `tcp:tcp_rcv_space_adjust`, which a TCP read fires in the reading
/// thread: the socket of a TLS read (or handshake).
#[tracepoint]
pub fn ftpct_tls_recv(ctx: TracePointContext) -> u32 {
    tls::received(&ctx)
}

/// Benchmark reference: XDP_PASS only.
#[xdp]
pub fn bench_xdp_pass(ctx: XdpContext) -> u32 {
    reference::pass(&ctx)
}

/// Benchmark reference: stateless drop of SYNs to the guarded range.
#[xdp]
pub fn bench_syn_floor(ctx: XdpContext) -> u32 {
    reference::syn_floor(&ctx)
}

/// Benchmark flood generator: rewrites the template SYN and returns XDP_TX
/// (only ever run by `BPF_PROG_TEST_RUN` in live frames mode).
#[xdp]
pub fn bench_flood_tx(ctx: XdpContext) -> u32 {
    reference::flood_tx(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// bpf_loop and the logging helpers need a GPL-compatible license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
