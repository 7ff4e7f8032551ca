//! The expectation table's life cycle: creation under the per-connection and
//! per-client caps, one-shot consumption, and sweeping expired entries when
//! the table is full.
//!
//! An expectation's key follows from its control connection and kind: for
//! `PASV`/`EPSV` the client connects to the server, for `PORT`/`EPRT` the
//! server connects to the client (whose address `PORT` was checked to name).
//!
//! Keys and values are passed to the map helpers by reference throughout: they
//! live in per-CPU scratch memory, and by value they would be copied onto the
//! stack, which this call chain cannot spare.
#![allow(clippy::needless_borrows_for_generic_args)]

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_for_each_map_elem;
use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, ControlState, RECENT_SLOTS},
    counters::Counter,
    family,
    flow::{ClientValue, ExpectKey, ExpectKindField, ExpectValue, expect_kind},
    policy::Policy,
};

use crate::{
    addr, clients,
    counters::count,
    events,
    maps::{FTPCT_EXPECT, Scratch},
    port_window,
    shared::{ScratchSlot, now_ns, ready_policy, scratch},
};

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;
const EEXIST: i32 = -17;

/// Whether the FTP client is the connecting side for this kind.
#[inline(always)]
fn client_connects(kind: ExpectKindField) -> bool {
    kind == expect_kind::PASV || kind == expect_kind::EPSV
}

/// Fills `out` with the key of the expectation `ctrl` announces for `port`.
#[inline(always)]
fn fill_key(out: &mut ExpectKey, ctrl: &ControlKey, port: u16, kind: ExpectKindField) {
    let (src, dst) = if client_connects(kind) {
        (&ctrl.client, &ctrl.server)
    } else {
        (&ctrl.server, &ctrl.client)
    };
    out.family = ctrl.family;
    out._pad = 0;
    out.dport = port;
    addr::copy(&mut out.src, src);
    addr::copy(&mut out.dst, dst);
}

/// Creates the expectation `ctrl` announced for `port`, within the caps. All
/// keys and values are built in per-CPU scratch memory: this runs deep in the
/// parser's call chain, where stack is scarce.
#[inline(always)]
pub fn create(
    state: &mut ControlState,
    ctrl: &ControlKey,
    port: u16,
    kind: ExpectKindField,
    policy: &Policy,
    slot: ScratchSlot,
) {
    let Some(scratch) = scratch(slot) else {
        return;
    };
    let now = now_ns();

    // Per-client and, for IPv6, per-site caps, on the expectations still live.
    let time_slot = ClientValue::slot_of(now, policy.expect_timeout_ns);
    let fam = ctrl.family;
    let Some(client) = clients::entry(scratch, fam, &ctrl.client, clients::client_prefix(fam))
    else {
        return;
    };
    client.roll(time_slot);
    if client.live() >= u32::from(policy.max_expect_per_client) {
        events::refuse(Counter::RefusedClientLimit, ctrl, slot);
        return;
    }
    let mut site = None;
    if fam == family::V6 {
        let Some(s) = clients::entry(scratch, fam, &ctrl.client, clients::SITE_PREFIX) else {
            return;
        };
        s.roll(time_slot);
        if s.live() >= u32::from(policy.max_expect_per_site) {
            events::refuse(Counter::RefusedSiteLimit, ctrl, slot);
            return;
        }
        site = Some(s);
    }

    // Per-connection cap: the slot this one takes may hold the connection's
    // oldest live expectation, which it replaces.
    let slot_index = state.recent_next as usize & (RECENT_SLOTS - 1);
    let old = state.recent[slot_index];
    if old.port != 0
        && let Some(expires) = replace_own(scratch, ctrl, old.port, old.kind)
    {
        let created = created_slot(expires, policy);
        client.release(created);
        if let Some(site) = site.as_mut() {
            site.release(created);
        }
        count(Counter::ExpectReplaced);
    }

    fill_key(&mut scratch.expect_key, ctrl, port, kind);
    let v = &mut scratch.expect_value;
    v.expires_ns = now.wrapping_add(policy.expect_timeout_ns);
    v.kind = kind;
    v.client_is_src = client_connects(kind) as u8;
    v._pad = [0; 2];
    v.ctrl_client_port = ctrl.client_port;
    v.ctrl_server_port = ctrl.server_port;
    let mut is_new = true;
    match insert(scratch, BPF_NOEXIST) {
        Ok(()) => {}
        // Announced again before use, maybe on another control connection of
        // the same client: this connection takes it over (and counts it in its
        // own slots); the client's count already includes it.
        Err(EEXIST) => {
            if insert(scratch, BPF_ANY).is_err() {
                return;
            }
            is_new = false;
        }
        Err(_) => {
            // Full: expired entries nobody consumed may be what fills it.
            sweep();
            if insert(scratch, BPF_NOEXIST).is_err() {
                events::refuse(Counter::RefusedExpectFull, ctrl, slot);
                return;
            }
        }
    }
    state.recent[slot_index].port = port;
    state.recent[slot_index].kind = kind;
    // Wrap by comparison: a `%` would leave a divide-by-zero panic path the
    // verifier rejects.
    let next = state.recent_next.wrapping_add(1);
    state.recent_next = if next >= u32::from(policy.max_expect_per_conn) {
        0
    } else {
        next
    };
    if is_new {
        client.add();
        if let Some(site) = site {
            site.add();
        }
    }
    port_window::extend(port, policy.expect_timeout_ns);
    count(match kind {
        expect_kind::PASV => Counter::ExpectPasv,
        expect_kind::EPSV => Counter::ExpectEpsv,
        expect_kind::PORT => Counter::ExpectPort,
        _ => Counter::ExpectEprt,
    });
}

/// Deletes the connection's earlier expectation for `port` if it is still
/// there and still this connection's (the same key may since have been
/// announced on another control connection of the same pair of hosts).
/// Returns its deadline.
#[inline(always)]
fn replace_own(
    scratch: &mut Scratch,
    ctrl: &ControlKey,
    port: u16,
    kind: ExpectKindField,
) -> Option<u64> {
    fill_key(&mut scratch.expect_key, ctrl, port, kind);
    // SAFETY: read-only look at a value from a successful lookup.
    let value = unsafe { FTPCT_EXPECT.get(&scratch.expect_key) }?;
    if value.ctrl_client_port != ctrl.client_port || value.ctrl_server_port != ctrl.server_port {
        return None;
    }
    let expires = value.expires_ns;
    FTPCT_EXPECT.remove(&scratch.expect_key).ok()?;
    Some(expires)
}

/// The client slot an expectation with deadline `expires` was created in.
#[inline(always)]
fn created_slot(expires: u64, policy: &Policy) -> u64 {
    ClientValue::slot_of(
        expires.wrapping_sub(policy.expect_timeout_ns),
        policy.expect_timeout_ns,
    )
}

/// Inserts the expectation prepared in scratch memory.
#[inline(always)]
fn insert(scratch: &Scratch, flags: u64) -> Result<(), i32> {
    FTPCT_EXPECT.insert(&scratch.expect_key, &scratch.expect_value, flags)
}

/// Removes the expectation matching an inbound SYN (one-shot). Returns its
/// deadline, or `None` if there was none or another CPU consumed it first.
#[inline(always)]
pub fn consume(key: &ExpectKey) -> Option<u64> {
    // SAFETY: read-only copy of a value from a successful lookup.
    let value = unsafe { FTPCT_EXPECT.get(key) }.copied()?;
    // Removing is the claim.
    FTPCT_EXPECT.remove(key).ok()?;
    release_client(key, &value);
    Some(value.expires_ns)
}

/// Takes an expectation off its client's count.
#[inline(always)]
fn release_client(key: &ExpectKey, value: &ExpectValue) {
    let (Some(scratch), Some(policy)) = (scratch(ScratchSlot::Packet), ready_policy()) else {
        return;
    };
    let addr = if value.client_is_src != 0 {
        &key.src
    } else {
        &key.dst
    };
    release(
        scratch,
        key.family,
        addr,
        created_slot(value.expires_ns, policy),
    );
}

/// Takes one expectation created in `slot` off the counts of the client at
/// `addr` (and of its IPv6 site).
#[inline(always)]
fn release(scratch: &mut Scratch, fam: u8, addr: &Addr, slot: u64) {
    if let Some(client) = clients::existing(scratch, fam, addr, clients::client_prefix(fam)) {
        client.release(slot);
    }
    if fam == family::V6
        && let Some(site) = clients::existing(scratch, fam, addr, clients::SITE_PREFIX)
    {
        site.release(slot);
    }
}

/// Deletes every expired expectation. Runs only when the table is full, so
/// its cost (one pass over the table) is paid rarely, and afterwards the
/// table holds only live entries.
#[inline(never)]
fn sweep() {
    let mut now = now_ns();
    let map: *mut c_void = core::ptr::from_ref(&FTPCT_EXPECT).cast_mut().cast();
    // SAFETY: `map` is this program's map; the callback gets pointers to each
    // key and value and to `now` on this stack frame.
    unsafe {
        bpf_for_each_map_elem(
            map,
            sweep_one as *mut c_void,
            (&mut now as *mut u64).cast(),
            0,
        )
    };
    count(Counter::ExpectSwept);
}

/// `bpf_for_each_map_elem` callback: deletes the entry if it has expired.
extern "C" fn sweep_one(
    _map: *mut c_void,
    key: *const ExpectKey,
    value: *const ExpectValue,
    now: *mut c_void,
) -> i64 {
    // SAFETY: the kernel passes valid key/value pointers and our `now`.
    let (key, expires, now) = unsafe { (&*key, (*value).expires_ns, *(now as *const u64)) };
    if now > expires {
        // The client's count needs no update: an entry stops counting within
        // a seventh of a lifetime of expiring (see `ClientValue`).
        let _ = FTPCT_EXPECT.remove(key);
    }
    0
}

/// Removes an expectation its control connection announced, if it is still
/// there and still that connection's (a `PORT` the server refused: counted
/// as `counter`).
#[inline(always)]
pub fn withdraw(
    ctrl: &ControlKey,
    port: u16,
    kind: ExpectKindField,
    policy: &Policy,
    counter: Counter,
    slot: ScratchSlot,
) {
    let Some(scratch) = scratch(slot) else {
        return;
    };
    let Some(expires) = replace_own(scratch, ctrl, port, kind) else {
        return;
    };
    count(counter);
    release(
        scratch,
        ctrl.family,
        &ctrl.client,
        created_slot(expires, policy),
    );
}

/// The local end closed the control connection `key` (`state`): the
/// expectations it announced that nobody used go with it, since a data
/// connection after its session ended belongs to no session. A global BPF
/// function: its loop over the slots is verified once, whatever state the
/// caller is in.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_withdraw_all(state: *const ControlState, key: *const ControlKey) -> i32 {
    // SAFETY: the verifier checks every access through these pointers
    // against their BTF sizes; null pointers are handled.
    let (Some(state), Some(key)) = (unsafe { state.as_ref() }, unsafe { key.as_ref() }) else {
        return 0;
    };
    let Some(policy) = ready_policy() else {
        return 0;
    };
    for recent in state.recent.iter() {
        if recent.port != 0 {
            withdraw(
                key,
                recent.port,
                recent.kind,
                policy,
                Counter::ExpectDroppedControlClosed,
                ScratchSlot::Packet,
            );
        }
    }
    0
}
