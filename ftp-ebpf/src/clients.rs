//! Per-client counts behind the caps: live expectations per client address
//! (IPv6: per /64) and per IPv6 /48, and new control connections per client.
//! Each entry counts by time slot (`ClientValue`), so nothing is ever
//! decremented for an entry that simply expired or a connection that went
//! away silently.
//!
//! Keys are built in per-CPU scratch memory and go to the map helpers by
//! reference: the callers run deep in the parser's call chain.
#![allow(clippy::needless_borrows_for_generic_args)]

use ftp_ebpf_common::{
    Addr, family,
    flow::{ClientKey, ClientValue},
};

use crate::{addr, maps::FTPCT_CLIENTS, maps::Scratch};

const BPF_NOEXIST: u64 = 1;

/// Prefix length a single client is counted at: the address, or an IPv6 /64.
#[inline(always)]
pub fn client_prefix(fam: u8) -> u8 {
    if fam == family::V6 { 64 } else { 32 }
}

/// Prefix length of an IPv6 site.
pub const SITE_PREFIX: u8 = 48;

/// Fills `out` with the key of `addr` cut to `prefix` (32, 64 or 48).
#[inline(always)]
pub fn fill_key(out: &mut ClientKey, fam: u8, addr: &Addr, prefix: u8) {
    out.family = fam;
    out.prefix = prefix;
    out._pad1 = 0;
    addr::copy(&mut out.addr, addr);
    if prefix <= 64 {
        addr::clear_low64(&mut out.addr);
    }
    if prefix <= 48 {
        addr::clear_bytes_6_7(&mut out.addr);
    }
}

/// The entry of `addr` at `prefix`, created if missing; `None` only if the
/// table refused it and nobody else created it meanwhile.
#[inline(always)]
pub fn entry(
    scratch: &mut Scratch,
    fam: u8,
    addr: &Addr,
    prefix: u8,
) -> Option<&'static mut ClientValue> {
    if let Some(client) = existing(scratch, fam, addr, prefix) {
        return Some(client);
    }
    // A failed insert only means another CPU created it first (or the LRU
    // had to make room, which only forgets another client's counts).
    let _ = FTPCT_CLIENTS.insert(&scratch.client_key, &scratch.zero_client, BPF_NOEXIST);
    lookup(&scratch.client_key)
}

/// The entry of `addr` at `prefix`, if there is one (the key is left in
/// `scratch.client_key`).
#[inline(always)]
pub fn existing(
    scratch: &mut Scratch,
    fam: u8,
    addr: &Addr,
    prefix: u8,
) -> Option<&'static mut ClientValue> {
    fill_key(&mut scratch.client_key, fam, addr, prefix);
    lookup(&scratch.client_key)
}

#[inline(always)]
fn lookup(key: &ClientKey) -> Option<&'static mut ClientValue> {
    let client = FTPCT_CLIENTS.get_ptr_mut(key)?;
    // SAFETY: pointer from a successful lookup; a racing update from another
    // CPU can only make a count less exact, never unbounded (slots roll out).
    Some(unsafe { &mut *client })
}
