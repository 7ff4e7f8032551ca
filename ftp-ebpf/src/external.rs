//! Announcements naming the host's external address behind a 1:1 NAT
//! (`--external-address`): see `ftp_ebpf_common::nat`.

use ftp_ebpf_common::{Addr, counters::Counter, nat::ExternalKey};

use crate::{
    addr,
    counters::count,
    maps::FTPCT_EXTERNAL,
    shared::{ScratchSlot, scratch},
};

/// Whether an announcement naming `named` names the local end `local` of
/// its control connection: the address itself, or the external address
/// mapped to it (counted, as the NAT's share of announcements).
#[inline(always)]
pub fn names_local(family: u8, named: &Addr, local: &Addr, slot: ScratchSlot) -> bool {
    if addr::same(named, local) {
        return true;
    }
    let named_external =
        of(family, local, slot).is_some_and(|external| addr::same(external, named));
    if named_external {
        count(Counter::AnnouncedViaExternal);
    }
    named_external
}

/// The external address of the local address `local`: its own mapping, or
/// the family's catch-all. The key goes to the helper by reference: by
/// value it would be copied to the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
pub fn of(family: u8, local: &Addr, slot: ScratchSlot) -> Option<&'static Addr> {
    let key = &mut scratch(slot)?.external_key;
    // The key is built in scratch memory: this runs deep in the parser's
    // call chain, whose stack 6.1 holds to 512 bytes in total. It starts as
    // the catch-all key and is made specific with `addr::copy`, which moves
    // the address without a memcpy loop (`ExternalKey::new` takes it by value).
    *key = ExternalKey::any(family);
    addr::copy(&mut key.local, local);
    key.any = 0;
    // SAFETY: read-only look at values from successful lookups; user space
    // replaces a mapping whole, never in place.
    if let Some(external) = unsafe { FTPCT_EXTERNAL.get(&*key) } {
        return Some(external);
    }
    *key = ExternalKey::any(family);
    // SAFETY: as above.
    unsafe { FTPCT_EXTERNAL.get(&*key) }
}
