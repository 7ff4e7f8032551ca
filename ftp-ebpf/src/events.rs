//! Audit events: a dropped packet or a refused announcement becomes one
//! record in `FTPCT_EVENTS`, within two limits checked before anything
//! else is touched: this CPU's events per second (a spoofed flood from many
//! addresses costs a scratch lookup per packet, on the clock the packet
//! path already read), then the source's (one noisy host cannot fill the
//! log).
#![allow(clippy::needless_borrows_for_generic_args)]

use ftp_ebpf_common::{
    Addr,
    control::ControlKey,
    counters::Counter,
    events::{Event, PER_CPU_PER_SEC, PER_SOURCE_PER_SEC},
};

use crate::{
    clients::{client_prefix, fill_key},
    counters::count,
    headers::PacketInfo,
    maps::{FTPCT_EVENT_SOURCES, FTPCT_EVENTS, Scratch},
    shared::{ScratchSlot, now_ns, scratch},
};

const BPF_NOEXIST: u64 = 1;

/// The audit event of a packet dropped at `now` (the packet clock; its
/// source is the remote end), in the packet programs. On the flood path:
/// the budget is checked inline, so a suppressed event costs no call.
#[inline(always)]
pub fn dropped(reason: Counter, info: &PacketInfo, now: u64) {
    if let Some(s) = within_budget(ScratchSlot::Packet, now) {
        dropped_event(s, reason, info, now);
    }
}

/// The part of `dropped` that runs for an event within this CPU's budget.
/// Not inlined: its frame stays off the packet programs' call chains.
#[inline(never)]
fn dropped_event(s: &mut Scratch, reason: Counter, info: &PacketInfo, now: u64) {
    send(
        s,
        now,
        reason,
        info.family,
        (&info.src, info.sport),
        (&info.dst, info.dport),
    );
}

/// Counts a refused announcement and sends its audit event (from the
/// control connection's client to its server). Not inlined: one copy
/// serves every refusal site, and its frame stays off the parser's chain.
#[inline(never)]
pub fn refuse(reason: Counter, key: &ControlKey, slot: ScratchSlot) {
    count(reason);
    // The precise clock: the TLS probes keep no packet clock.
    let now = now_ns();
    let Some(s) = within_budget(slot, now) else {
        return;
    };
    send(
        s,
        now,
        reason,
        key.family,
        (&key.client, key.client_port),
        (&key.server, key.server_port),
    );
}

/// This CPU's scratch region `slot`, if its budget admits one more event
/// at `now` (else the event is counted as suppressed).
#[inline(always)]
fn within_budget(slot: ScratchSlot, now: u64) -> Option<&'static mut Scratch> {
    let s = scratch(slot)?;
    if !s.event_budget.admit(now, PER_CPU_PER_SEC) {
        count(Counter::EventsSuppressed);
        return None;
    }
    Some(s)
}

/// Sends the event of `reason` from `src` to `dst` at `now`, unless its
/// source's limit says not (this CPU's budget admitted it); counts what
/// became of it.
#[inline(always)]
fn send(
    s: &mut Scratch,
    now: u64,
    reason: Counter,
    family: u8,
    src: (&Addr, u16),
    dst: (&Addr, u16),
) {
    fill_key(&mut s.event_key, family, src.0, client_prefix(family));
    if FTPCT_EVENT_SOURCES.get_ptr_mut(&s.event_key).is_none() {
        let _ = FTPCT_EVENT_SOURCES.insert(&s.event_key, &s.zero_rate, BPF_NOEXIST);
    }
    let Some(rate) = FTPCT_EVENT_SOURCES.get_ptr_mut(&s.event_key) else {
        return;
    };
    // SAFETY: pointer from a successful lookup; another CPU's update of the
    // same source can only make the limit a little less exact.
    let rate = unsafe { &mut *rate };
    if !rate.admit(now, PER_SOURCE_PER_SEC) {
        count(Counter::EventsSuppressed);
        return;
    }
    s.event = Event::new(now, reason as u32, family, (*src.0, src.1), (*dst.0, dst.1));
    s.event.suppressed = rate.take_suppressed();
    count(match FTPCT_EVENTS.output(&s.event, 0) {
        Ok(()) => Counter::EventsSent,
        Err(_) => Counter::EventsLost,
    });
}
