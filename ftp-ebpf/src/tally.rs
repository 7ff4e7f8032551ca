//! `ftpct_tally`: counts the live entries of the tables for `ftpct status`
//! and the metrics. User space runs it with `BPF_PROG_TEST_RUN` on a
//! scratch frame and reads the counts from the frame it gets back; it is
//! never attached. `bpf_for_each_map_elem` walks each table in the kernel,
//! where no entry is copied out. Live means what the data path judges:
//! an expectation not yet expired, a flow within its timeout.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_for_each_map_elem, programs::XdpContext,
};
use ftp_ebpf_common::{
    flow::{ExpectValue, FlowValue, flow_origin},
    policy::Policy,
    tally::Tally,
};

use crate::{
    maps::{FTPCT_CONTROL, FTPCT_EXPECT, FTPCT_FLOWS, FTPCT_HOST_FLOWS, FTPCT_POLICY},
    shared::now_ns,
};

/// What the callbacks read and count; lives on the program's stack.
struct Walk {
    now: u64,
    policy: Policy,
    tally: Tally,
}

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let start = ctx.data();
    if start + Tally::SIZE > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    let Some(policy) = FTPCT_POLICY.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let mut walk = Walk {
        now: now_ns(),
        policy: *policy,
        tally: Tally::default(),
    };
    let w: *mut c_void = (&mut walk as *mut Walk).cast();
    // SAFETY: each map pointer is a map of this object, each callback has
    // the signature the helper calls it with, and `w` points to this frame
    // for the whole call.
    unsafe {
        bpf_for_each_map_elem(map(&FTPCT_EXPECT), expectation as *mut c_void, w, 0);
        bpf_for_each_map_elem(map(&FTPCT_FLOWS), flow as *mut c_void, w, 0);
        bpf_for_each_map_elem(map(&FTPCT_HOST_FLOWS), flow as *mut c_void, w, 0);
        bpf_for_each_map_elem(map(&FTPCT_CONTROL), control as *mut c_void, w, 0);
    }
    // SAFETY: `start + Tally::SIZE` is within the frame (checked above); the
    // frame is writable and need not be aligned for an unaligned write.
    unsafe { (start as *mut Tally).write_unaligned(walk.tally) };
    xdp_action::XDP_PASS
}

/// The pointer the map helpers take for `map`.
#[inline(always)]
fn map<M>(map: &M) -> *mut c_void {
    core::ptr::from_ref(map).cast_mut().cast()
}

/// Callback for the expectation table; 0: go on.
extern "C" fn expectation(
    _map: *mut c_void,
    _key: *mut c_void,
    value: *mut c_void,
    w: *mut c_void,
) -> i64 {
    // SAFETY: the helper passes a value of FTPCT_EXPECT and `run`'s `Walk`.
    let (v, w) = unsafe { (&*(value as *const ExpectValue), &mut *(w as *mut Walk)) };
    if v.expires_ns >= w.now {
        w.tally.expectations += 1;
    }
    0
}

/// Callback for both flow tables.
extern "C" fn flow(
    _map: *mut c_void,
    _key: *mut c_void,
    value: *mut c_void,
    w: *mut c_void,
) -> i64 {
    // SAFETY: the helper passes a value of a flow table and `run`'s `Walk`.
    let (v, w) = unsafe { (&*(value as *const FlowValue), &mut *(w as *mut Walk)) };
    if w.now.saturating_sub(v.last_seen_ns) <= w.policy.flow_ttl_ns(v.state) {
        w.tally.flows += 1;
        if v.origin == flow_origin::ADMITTED {
            w.tally.admitted_flows += 1;
        }
    }
    0
}

/// Callback for the control-connection table (every entry counts).
extern "C" fn control(
    _map: *mut c_void,
    _key: *mut c_void,
    _value: *mut c_void,
    w: *mut c_void,
) -> i64 {
    // SAFETY: the helper passes `run`'s `Walk`.
    let w = unsafe { &mut *(w as *mut Walk) };
    w.tally.control_connections += 1;
    0
}
