//! The XDP program's body.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use aya_log_ebpf::{
    debug,
    macro_support::{Level, level_enabled},
};
use core::mem::MaybeUninit;

use ftp_ebpf_common::{
    counters::Counter,
    policy::{Policy, PortClass},
};

use crate::{
    conntrack::{self, Verdict},
    control,
    counters::count,
    events,
    headers::{self, L4, PacketInfo},
    shared::{packet_now, port_class, ready_policy},
};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    // Every packet is counted exactly once, by its verdict; user space adds
    // the verdicts up for `ingress_packets` (one per-CPU update per packet).
    let mut slot = MaybeUninit::uninit();
    let info = match headers::parse(ctx, &mut slot) {
        Ok(info) => info,
        Err(L4::TcpFragment) => return drop_if_ready(Counter::FragmentsDropped),
        Err(L4::Unverifiable) => return drop_if_ready(Counter::UnverifiableDropped),
        Err(L4::Malformed) => {
            count(Counter::PassedUnparsed);
            return xdp_action::XDP_PASS;
        }
        Err(_) => {
            count(Counter::PassedOther);
            return xdp_action::XDP_PASS;
        }
    };
    // Until user space has written the ports map every port reads as open, so
    // only the guarded path below needs to check that the policy is in place.
    let dclass = port_class(info.dport);
    let to_control = dclass == PortClass::Control;
    let from_control = port_class(info.sport) == PortClass::Control;
    if to_control || from_control {
        // Acknowledgments of a stream `--nat-rewrite` moved are moved back
        // before anything reads them.
        control::unmove_ack(ctx, info, to_control, from_control);
        // Which of a local server's or a local client's connections this is
        // comes from the state the local end created, not from the ports.
        control::inbound(ctx, info, to_control, from_control);
    }
    if to_control {
        count(Counter::PassedControl);
        return xdp_action::XDP_PASS;
    }
    if dclass != PortClass::Guarded {
        count(Counter::PassedOther);
        return xdp_action::XDP_PASS;
    }
    let Some(policy) = ready_policy() else {
        count(Counter::PassedOther);
        return xdp_action::XDP_PASS;
    };
    let now = packet_now();
    // A flood's SYNs and a transfer's packets mostly end here, without a
    // call or a table lookup.
    let verdict = match conntrack::without_tables(info, policy, now) {
        Some(verdict) => verdict,
        None => guarded(info, policy, now),
    };
    // The log level is a constant of the loaded program, so the verifier
    // removes this call unless `ftpct run` asked for debug logs.
    if info.is_syn() && level_enabled(Level::Debug) {
        log_syn(ctx, info, &verdict);
    }
    match verdict {
        Verdict::Pass(counter) => {
            count(counter);
            xdp_action::XDP_PASS
        }
        Verdict::Drop(counter) => {
            count(counter);
            events::dropped(counter, info, now);
            xdp_action::XDP_DROP
        }
    }
}

/// The verdict on an inbound packet to a guarded port. Not inlined: its keys
/// and flow state live in this frame, a sibling of the control path's, so
/// the two never add up against the kernel's 512-byte limit on a call
/// chain's stack (Linux 6.1 counts the whole chain, the main program's frame
/// included).
#[inline(never)]
fn guarded(info: &PacketInfo, policy: &Policy, now: u64) -> Verdict {
    conntrack::inbound(info, policy, now)
}

/// Debug log of a SYN verdict (`ftpct run`).
/// Not inlined: the log record's buffers stay out of the main frame, whose
/// stack adds up with the parser's call chain against the 512-byte limit.
#[inline(never)]
fn log_syn(ctx: &XdpContext, info: &PacketInfo, verdict: &Verdict) {
    let action = match verdict {
        Verdict::Pass(_) => "admitted",
        Verdict::Drop(_) => "dropped",
    };
    if info.family == ftp_ebpf_common::family::V4 {
        let src = [info.src[0], info.src[1], info.src[2], info.src[3]];
        debug!(
            ctx,
            "{} SYN {:i}:{} -> port {}", action, src, info.sport, info.dport
        );
    } else {
        debug!(
            ctx,
            "{} SYN [{:i}]:{} -> port {}", action, info.src, info.sport, info.dport
        );
    }
}

/// Drops (and counts) a frame ftpct cannot classify, once the policy is in place.
#[inline(always)]
fn drop_if_ready(counter: Counter) -> u32 {
    if ready_policy().is_none() {
        count(Counter::PassedOther);
        return xdp_action::XDP_PASS;
    }
    count(counter);
    xdp_action::XDP_DROP
}
