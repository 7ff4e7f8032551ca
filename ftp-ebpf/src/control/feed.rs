//! Runs the parser over a segment's payload: copied in chunks into per-CPU
//! scratch memory and fed a byte at a time through `bpf_loop`, with every
//! completed line handed to `correlate`.

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
    maps::{CHUNK, FTPCT_POLICY, FTPCT_SCRATCH},
    packet::Packet,
    parse_step::{ftpct_feed_command, ftpct_feed_reply},
};

/// Payload bytes parsed per segment at most (`CHUNK` × this); the rest of a
/// longer segment is skipped and the parser resynchronised at the next line.
const MAX_CHUNKS: usize = 8;

/// What the `bpf_loop` callback needs; lives on the caller's stack.
#[repr(C)]
struct FeedCtx {
    chunk: *const u8,
    state: *mut ControlState,
    key: *const ControlKey,
    policy: *const Policy,
    /// Sequence number of the segment's first payload byte.
    seg_seq: u32,
    /// Offset in the payload of the chunk's first byte.
    chunk_off: u32,
    max_line: u16,
    dir: u8,
}

/// Copies the payload from `start` in chunks and runs the parser over it.
#[inline(always)]
pub fn payload<P: Packet>(
    pkt: &P,
    info: &PacketInfo,
    state: &mut ControlState,
    key: &ControlKey,
    dir: Direction,
    start: u32,
) {
    let (Some(scratch), Some(policy)) = (FTPCT_SCRATCH.get_ptr_mut(0), FTPCT_POLICY.get_ptr(0))
    else {
        return;
    };
    // SAFETY: per-CPU scratch from a successful lookup.
    let chunk = unsafe { (*scratch).chunk.as_mut_ptr() };
    let mut ctx = FeedCtx {
        chunk,
        state,
        key,
        policy,
        // SAFETY: pointer from a successful array lookup.
        max_line: unsafe { (*policy).max_line },
        dir: dir as u8,
        seg_seq: info.seq,
        chunk_off: 0,
    };
    let len = info.payload_len;
    let mut done = start;
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
        if !pkt.load_bytes(info.payload_off + done, chunk, n) {
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
        ftpct_on_line(ctx.state, ctx.key, ctx.policy, d as u32);
        // SAFETY: as above; taken again after the call that wrote it.
        let state = unsafe { &mut *ctx.state };
        if state.nat.stage == rewrite_stage::WANTED {
            rewrite::place(state, d, ctx.seg_seq, ctx.chunk_off + index as u32 + 1);
        }
    }
    0
}
