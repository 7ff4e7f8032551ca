//! FTPS inspection (see `ftp_ebpf_common::tls`): the local server's TLS
//! library calls, tied to the control connections they serve.
//!
//! A library call's entry remembers, per thread, the `SSL *` and buffer it
//! was called with. A TCP read within it (`tcp:tcp_rcv_space_adjust`, a
//! tracepoint every kernel has; a TLS handshake always reads) names the
//! socket: if that socket is in the guarded namespace and is a tracked
//! encrypted control connection, the `SSL *` is tied to it (the handshake
//! does so before any plaintext). The plaintext of a write is parsed at its
//! entry (before the reply leaves, so a client can never be faster than its
//! expectation; at its return if the object was not tied yet), that of a
//! read at its return. The tracepoint only ties.
//! Plaintext is copied only into per-CPU scratch memory, parsed and wiped
//! there; nothing of it leaves the kernel.
//!
//! Keys and values go to the map helpers by reference: by value they would
//! be copied to the stack again.
#![allow(clippy::needless_borrows_for_generic_args)]

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::bpf_probe_read_user as probe_read_user_raw,
    },
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, control_flags},
    counters::Counter,
    family,
    parser::Direction,
    tls::{TlsCall, TlsConfig, TlsObject, TlsTie, tls_op},
};

use crate::{
    control::{self, Source},
    counters::count,
    maps::{CHUNK, FTPCT_CONTROL, FTPCT_TLS_CALLS, FTPCT_TLS_CONFIG, FTPCT_TLS_SOCKETS, Scratch},
    shared::{ScratchSlot, scratch},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const BPF_ANY: u64 = 0;

/// The configuration, once user space wrote it.
#[inline(always)]
fn config() -> Option<&'static TlsConfig> {
    FTPCT_TLS_CONFIG.get(0).filter(|c| c.ready != 0)
}

/// Entry of a TLS library call (`op`: `tls_op::*`): remembers it for the
/// tracepoint and the return probe; a write whose object is already
/// tied is parsed now.
#[inline(always)]
pub fn enter(ctx: &ProbeContext, op: u8) -> u32 {
    if config().is_none() {
        return 0;
    }
    let (Some(ssl), Some(buf), Some(len)) =
        (ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u64>(2))
    else {
        return 0;
    };
    let mut call = TlsCall {
        ssl,
        buf,
        count_ptr: if op == tls_op::READ_EX {
            ctx.arg::<u64>(3).unwrap_or(0)
        } else {
            0
        },
        // `int num` (`SSL_write`: the register's upper half is not part of
        // it) or `size_t num` (`SSL_write_ex`): the low half either way; a
        // negative `int` is no length.
        len: u32::try_from(len as u32 as i32).unwrap_or(0),
        op,
        fed: 0,
        _pad: 0,
    };
    let id = bpf_get_current_pid_tgid();
    if op == tls_op::WRITE && feed_tied(id, &call, true, call.len) {
        call.fed = 1;
    }
    let _ = FTPCT_TLS_CALLS.insert(id, call, BPF_ANY);
    0
}

/// Return of `SSL_read` (`ex` false: the count is the return value) or
/// `SSL_read_ex` (`ex`: returns 1 and stores the count): parses what was
/// read. The call's record goes either way.
#[inline(always)]
pub fn read_return(ctx: &RetProbeContext, ex: bool) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: a copy of a value from a successful lookup.
    let Some(call) = (unsafe { FTPCT_TLS_CALLS.get(id) }).copied() else {
        return 0;
    };
    let _ = FTPCT_TLS_CALLS.remove(id);
    // Every probed call returns an `int`: the register's upper half is not
    // part of it (-1 may come back as 0xffffffff).
    let ret: i32 = ctx.ret();
    let n: u64 = if !ex {
        u64::try_from(ret).unwrap_or(0)
    } else if ret == 1 && call.count_ptr != 0 {
        // SAFETY: the helper checks the user address; a fault gives an error.
        unsafe { bpf_probe_read_user(call.count_ptr as *const u64) }.unwrap_or(0)
    } else {
        0
    };
    if n > 0 && (call.op == tls_op::READ || call.op == tls_op::READ_EX) {
        feed_tied(id, &call, false, n.min(u64::from(u32::MAX)) as u32);
    }
    0
}

/// Return of any other probed call: its record goes, and a write whose
/// object was tied only during the call is parsed now.
#[inline(always)]
pub fn call_return(ctx: &RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: a copy of a value from a successful lookup.
    let Some(call) = (unsafe { FTPCT_TLS_CALLS.get(id) }).copied() else {
        return 0;
    };
    let _ = FTPCT_TLS_CALLS.remove(id);
    let ret: i32 = ctx.ret();
    if call.op == tls_op::WRITE && call.fed == 0 && ret > 0 {
        feed_tied(id, &call, true, call.len);
    }
    0
}

/// A TCP read (`tcp:tcp_rcv_space_adjust`; the socket's address is the
/// event's `skaddr`, at the offset user space read from its format).
#[inline(always)]
pub fn received(ctx: &TracePointContext) -> u32 {
    let Some(cfg) = config() else {
        return 0;
    };
    // SAFETY: the helper behind `read_at` checks the offset against the
    // event record.
    match unsafe { ctx.read_at::<u64>(usize::from(cfg.tp_skaddr)) } {
        Ok(sk) => socket(sk),
        Err(_) => 0,
    }
}

/// The kernel's TCP read on socket `sk`:
/// within a TLS call of this thread, ties the call's object to the socket's
/// encrypted control connection, or unties it if the socket is none.
#[inline(always)]
pub fn socket(sk: u64) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: a copy of a value from a successful lookup.
    let Some(call) = (unsafe { FTPCT_TLS_CALLS.get(id) }).copied() else {
        return 0;
    };
    let Some(cfg) = config() else {
        return 0;
    };
    let object = TlsObject::new((id >> 32) as u32, call.ssl);
    let Some(tie) = tie_of(cfg, sk) else {
        let _ = FTPCT_TLS_SOCKETS.remove(&object);
        return 0;
    };
    // SAFETY: a read-only look at a value from a successful lookup.
    let known = unsafe { FTPCT_TLS_SOCKETS.get(&object) }.is_some_and(|t| *t == tie);
    if !known {
        if FTPCT_TLS_SOCKETS.insert(&object, &tie, BPF_ANY).is_err() {
            return 0;
        }
        count(Counter::TlsTied);
    }
    0
}

/// The encrypted control connection socket `sk` is, with the local end's
/// role, if it is one this attachment tracks in its namespace.
#[inline(always)]
fn tie_of(cfg: &TlsConfig, sk: u64) -> Option<TlsTie> {
    let at = |off: u16| (sk + u64::from(off)) as *const u8;
    // SAFETY (every read below): the helper checks the kernel address and
    // fails cleanly; the offsets come from the running kernel's BTF.
    let net: u64 = unsafe { bpf_probe_read_kernel(at(cfg.skc_net).cast()) }.ok()?;
    let inum: u32 =
        unsafe { bpf_probe_read_kernel((net + u64::from(cfg.net_inum)) as *const u32) }.ok()?;
    if inum != cfg.netns_inum {
        count(Counter::TlsOtherNetns);
        return None;
    }
    let fam: u16 = unsafe { bpf_probe_read_kernel(at(cfg.skc_family).cast()) }.ok()?;
    let lport: u16 = unsafe { bpf_probe_read_kernel(at(cfg.skc_num).cast()) }.ok()?;
    let rport: u16 = u16::from_be(unsafe { bpf_probe_read_kernel(at(cfg.skc_dport).cast()) }.ok()?);
    let (fam, local, remote) = match fam {
        AF_INET => {
            let l: [u8; 4] = unsafe { bpf_probe_read_kernel(at(cfg.skc_rcv_saddr).cast()) }.ok()?;
            let r: [u8; 4] = unsafe { bpf_probe_read_kernel(at(cfg.skc_daddr).cast()) }.ok()?;
            (family::V4, v4(l), v4(r))
        }
        AF_INET6 => {
            let l: Addr = unsafe { bpf_probe_read_kernel(at(cfg.skc_v6_rcv_saddr).cast()) }.ok()?;
            let r: Addr = unsafe { bpf_probe_read_kernel(at(cfg.skc_v6_daddr).cast()) }.ok()?;
            // A dual-stack socket's IPv4 peer (::ffff:a.b.c.d) is tracked
            // as IPv4, as the packets show it.
            match (unmapped(&l), unmapped(&r)) {
                (Some(l), Some(r)) => (family::V4, l, r),
                _ => (family::V6, l, r),
            }
        }
        _ => return None,
    };
    let as_server = ControlKey::new(fam, remote, rport, local, lport);
    if tracked(&as_server, control_flags::LOCAL_SERVER) {
        return Some(TlsTie {
            key: as_server,
            local_server: 1,
            _pad: [0; 7],
        });
    }
    let as_client = ControlKey::new(fam, local, lport, remote, rport);
    if tracked(&as_client, control_flags::LOCAL_CLIENT) {
        return Some(TlsTie {
            key: as_client,
            local_server: 0,
            _pad: [0; 7],
        });
    }
    count(Counter::TlsUntracked);
    None
}

/// Whether `key` is an encrypted control connection tracked for `side`.
#[inline(always)]
fn tracked(key: &ControlKey, side: u8) -> bool {
    // SAFETY: a read-only look at a value from a successful lookup.
    unsafe { FTPCT_CONTROL.get(key) }.is_some_and(|s| {
        let want = side | control_flags::TLS;
        s.flags & want == want
    })
}

/// An IPv4 address in `Addr` form.
#[inline(always)]
fn v4(a: [u8; 4]) -> Addr {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a);
    out
}

/// The IPv4 address of an IPv4-mapped IPv6 address.
#[inline(always)]
fn unmapped(a: &Addr) -> Option<Addr> {
    let mapped = a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff;
    mapped.then(|| v4([a[12], a[13], a[14], a[15]]))
}

/// Plaintext in the calling process's memory.
struct UserBuf(u64);

impl Source for UserBuf {
    #[inline(always)]
    fn load(&self, off: u32, dst: *mut u8, n: u32) -> bool {
        // SAFETY: the helper checks the user address and fails cleanly;
        // `dst` holds at least `n` bytes (the caller's chunk).
        unsafe { probe_read_user_raw(dst.cast(), n, (self.0 + u64::from(off)) as *const _) == 0 }
    }
}

/// Parses `len` bytes of `call`'s buffer if its object is tied to a
/// control connection still tracked: a write (`write`) or a read by the
/// local end. Whether it was parsed.
#[inline(always)]
fn feed_tied(id: u64, call: &TlsCall, write: bool, len: u32) -> bool {
    let object = TlsObject::new((id >> 32) as u32, call.ssl);
    // SAFETY: a copy of a value from a successful lookup.
    let Some(tie) = (unsafe { FTPCT_TLS_SOCKETS.get(&object) }).copied() else {
        return false;
    };
    let side = if tie.local_server != 0 {
        control_flags::LOCAL_SERVER
    } else {
        control_flags::LOCAL_CLIENT
    };
    let Some(state) = FTPCT_CONTROL.get_ptr_mut(&tie.key) else {
        return false;
    };
    // SAFETY: pointer from a successful lookup of this program's map; after
    // TLS starts the packet programs no longer touch the parsers.
    let state = unsafe { &mut *state };
    let want = side | control_flags::TLS;
    if state.flags & want != want {
        return false;
    }
    // The local server writes replies and reads commands; a local client
    // the other way round.
    let dir = if write == (tie.local_server != 0) {
        Direction::ServerToClient
    } else {
        Direction::ClientToServer
    };
    let Some(region) = scratch(ScratchSlot::Probe) else {
        return false;
    };
    if region.busy != 0 {
        // Another task's probe holds this CPU's region (it was preempted
        // there): the line is lost, and the parser starts again at the next
        // one. BPF has no atomic exchange here: between this check and the
        // store below, a preemption could still let two in (a few
        // instructions, on fully preemptible kernels only).
        count(Counter::TlsBusy);
        state.parsers[dir as usize & 1].resync();
        return false;
    }
    region.busy = 1;
    control::plaintext(&UserBuf(call.buf), len, state, &tie.key, dir);
    if let Some(region) = scratch(ScratchSlot::Probe) {
        wipe(region);
        region.busy = 0;
    }
    true
}

/// Overwrites the probes' copy of the plaintext (a `PASS` line's password
/// passes through it).
#[inline(always)]
fn wipe(scratch: &mut Scratch) {
    let words = scratch.chunk.as_mut_ptr().cast::<u64>();
    for i in 0..CHUNK / 8 {
        // SAFETY: `i` < CHUNK / 8 words of the CHUNK-byte chunk; unaligned
        // writes are fine for BPF's byte-addressed map memory.
        unsafe { words.add(i).write_unaligned(0) };
    }
}
