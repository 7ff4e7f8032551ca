//! Runs the parser over a segment's payload or a TLS call's plaintext:
//! copied in chunks into per-CPU scratch memory and fed a byte at a time
//! through `bpf_loop`, with every completed line handed to `correlate`.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use ftp_ebpf_common::{
    control::{ControlKey, ControlState},
    counters::Counter,
    nat::rewrite_stage,
    parser::Direction,
    policy::Policy,
};

use super::{correlate::ftpct_on_line, rewrite};
use crate::{
    counters::count,
    headers::PacketInfo,
    maps::{CHUNK, FTPCT_POLICY},
    packet::Packet,
    parse_step::{ftpct_feed_command, ftpct_feed_reply},
    shared::{ScratchSlot, scratch},
};

/// Bytes parsed per run at most (`CHUNK` × this); the rest of a longer
/// segment or TLS write is skipped and the parser resynchronised at the
/// next line.
pub const MAX_CHUNKS: usize = 8;

/// Where a run of control-connection bytes comes from: a segment's payload,
/// or the plaintext of a TLS call in the calling process's memory.
pub trait Source {
    /// Copies `n` (1..=`CHUNK`) bytes at `off` into `dst`.
    fn load(&self, off: u32, dst: *mut u8, n: u32) -> bool;
}

/// The payload of a segment: bytes from `payload_off` of the packet.
struct Payload<'a, P: Packet> {
    pkt: &'a P,
    payload_off: u32,
}

impl<P: Packet> Source for Payload<'_, P> {
    #[inline(always)]
    fn load(&self, off: u32, dst: *mut u8, n: u32) -> bool {
        self.pkt.load_bytes(self.payload_off + off, dst, n)
    }
}

/// What the `bpf_loop` callback needs; lives on the caller's stack.
#[repr(C)]
struct FeedCtx {
    chunk: *const u8,
    state: *mut ControlState,
    key: *const ControlKey,
    policy: *const Policy,
    /// Sequence number of the run's first byte (a segment's; 0 for TLS).
    seg_seq: u32,
    /// Offset in the run of the chunk's first byte.
    chunk_off: u32,
    /// `ScratchSlot` as u32.
    slot: u32,
    max_line: u16,
    dir: u8,
}

/// Runs the parser over a segment's payload from `start`.
#[inline(always)]
pub fn payload<P: Packet>(
    pkt: &P,
    info: &PacketInfo,
    state: &mut ControlState,
    key: &ControlKey,
    dir: Direction,
    start: u32,
) {
    let src = Payload {
        pkt,
        payload_off: info.payload_off,
    };
    let run = Run {
        len: info.payload_len,
        start,
        seg_seq: info.seq,
        slot: ScratchSlot::Packet,
    };
    bytes(&src, &run, state, key, dir);
}

/// A run of bytes to parse: `len` of them from `src`, from `start`.
pub struct Run {
    pub len: u32,
    pub start: u32,
    /// Sequence number of byte 0 (where `--nat-rewrite` places a rewrite).
    pub seg_seq: u32,
    /// The scratch region the caller works in.
    pub slot: ScratchSlot,
}

/// Copies `run` from `src` in chunks into scratch memory and runs the
/// parser over it, direction `dir`.
#[inline(always)]
pub fn bytes<S: Source>(
    src: &S,
    run: &Run,
    state: &mut ControlState,
    key: &ControlKey,
    dir: Direction,
) {
    let (Some(scratch), Some(policy)) = (scratch(run.slot), FTPCT_POLICY.get_ptr(0)) else {
        return;
    };
    let chunk = scratch.chunk.as_mut_ptr();
    let mut ctx = FeedCtx {
        chunk,
        state,
        key,
        policy,
        // SAFETY: pointer from a successful array lookup.
        max_line: unsafe { (*policy).max_line },
        dir: dir as u8,
        seg_seq: run.seg_seq,
        chunk_off: 0,
        slot: run.slot as u32,
    };
    let len = run.len;
    let mut done = run.start;
    for _ in 0..MAX_CHUNKS {
        if done >= len {
            break;
        }
        // 1..=CHUNK in a form the verifier can prove (the helper rejects 0).
        let n = ((len - done - 1) & (CHUNK as u32 - 1)) + 1;
        let n = if len - done > CHUNK as u32 {
            CHUNK as u32
        } else {
            n
        };
        if !src.load(done, chunk, n) {
            break;
        }
        ctx.chunk_off = done;
        // SAFETY: the callback only dereferences the pointers in `ctx`, all of
        // which point to map values or this stack frame for the whole call.
        unsafe {
            bpf_loop(
                n,
                feed_byte as *mut c_void,
                (&mut ctx as *mut FeedCtx).cast(),
                0,
            )
        };
        done += n;
    }
    if done < len {
        count(Counter::ControlTruncated);
        state.parsers[dir as usize & 1].resync();
    }
}

/// `bpf_loop` callback: feeds byte `index` of the chunk to the parser.
extern "C" fn feed_byte(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the FeedCtx passed to bpf_loop by `feed_payload`.
    let ctx = unsafe { &*(ctx as *const FeedCtx) };
    // SAFETY: the index is masked into the CHUNK-byte scratch buffer.
    let byte = unsafe { *ctx.chunk.add(index as usize & (CHUNK - 1)) };
    // SAFETY: `state` points to the control map value for this whole run.
    let state = unsafe { &mut *ctx.state };
    let d = ctx.dir as usize & 1;
    let parser: *mut _ = &mut state.parsers[d];
    let (byte, max_line) = (u32::from(byte), u32::from(ctx.max_line));
    let done = if d == 0 {
        ftpct_feed_command(parser, byte, max_line)
    } else {
        ftpct_feed_reply(parser, byte, max_line)
    };
    if done != 0 {
        ftpct_on_line(ctx.state, ctx.key, ctx.policy, d as u32, ctx.slot);
        // SAFETY: as above; taken again after the call that wrote it.
        let state = unsafe { &mut *ctx.state };
        if state.nat.stage == rewrite_stage::WANTED {
            rewrite::place(state, d, ctx.seg_seq, ctx.chunk_off + index as u32 + 1);
        }
    }
    0
}
