//! Making room in the control table when it is full: connections that never
//! logged in within an expectation lifetime of their creation (a stranger's
//! connect-and-leave, which ends with no FIN from the local end), and
//! connections idle past the flow timeout (past the closing timeout for
//! those kept only to move the last segments of their close), are removed. Sessions that logged
//! in, the host's own client connections and those seeded at attach are
//! never removed for being unauthenticated.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_for_each_map_elem;
use ftp_ebpf_common::{
    control::{ControlKey, ControlState, control_flags},
    counters::Counter,
    policy::Policy,
};

use crate::{
    counters::count,
    maps::{FTPCT_CONTROL, Scratch},
};

/// A CPU sweeps at most this often: under a flood of new connections a full
/// table is the normal case, and a pass over it is not paid per connection.
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

/// What the callback compares against; lives on the caller's stack.
#[repr(C)]
struct SweepCtx {
    now: u64,
    login_ns: u64,
    idle_ns: u64,
    closing_ns: u64,
}

/// Sweeps the control table unless this CPU did so within the last second;
/// whether it swept.
#[inline(never)]
pub fn run(scratch: &mut Scratch, now: u64, policy: &Policy) -> bool {
    if now.saturating_sub(scratch.control_swept_ns) < SWEEP_INTERVAL_NS {
        return false;
    }
    scratch.control_swept_ns = now;
    let mut ctx = SweepCtx {
        now,
        login_ns: policy.expect_timeout_ns,
        idle_ns: policy.flow_timeout_ns,
        closing_ns: policy.closing_timeout_ns,
    };
    let map: *mut c_void = core::ptr::from_ref(&FTPCT_CONTROL).cast_mut().cast();
    // SAFETY: `map` is this program's map; the callback gets pointers to each
    // key and value and to `ctx` on this stack frame.
    unsafe {
        bpf_for_each_map_elem(
            map,
            sweep_one as *mut c_void,
            (&mut ctx as *mut SweepCtx).cast(),
            0,
        )
    };
    count(Counter::ControlSwept);
    true
}

/// `bpf_for_each_map_elem` callback: removes the entry if it is stale.
extern "C" fn sweep_one(
    _map: *mut c_void,
    key: *const ControlKey,
    value: *const ControlState,
    ctx: *mut c_void,
) -> i64 {
    // SAFETY: the kernel passes valid key/value pointers and our context.
    let (key, state, ctx) = unsafe { (&*key, &*value, &*(ctx as *const SweepCtx)) };
    let kept = control_flags::LOGGED_IN | control_flags::LOCAL_CLIENT | control_flags::SEEDED;
    let unauthenticated =
        state.flags & kept == 0 && ctx.now.saturating_sub(state.created_ns) > ctx.login_ns;
    // Saturating: a CPU may stamp an entry after this sweep read the clock.
    // A connection kept only for its close (`rewrite_stage::CLOSED`) goes
    // after the closing timeout.
    let idle_ns = if state.nat.closed() {
        ctx.closing_ns
    } else {
        ctx.idle_ns
    };
    let idle = ctx.now.saturating_sub(state.last_seen_ns) > idle_ns;
    if unauthenticated || idle {
        let _ = FTPCT_CONTROL.remove(key);
    }
    0
}
