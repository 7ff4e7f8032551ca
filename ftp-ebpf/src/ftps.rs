//! `--ftps-range`: the client of a live encrypted control connection, and
//! nobody else, may connect to the passive range (see
//! `ftp_ebpf_common::ftps`). Control connections become encrypted in
//! `control` (a `234` to `AUTH TLS`, or the implicit-FTPS port); inbound
//! SYNs into the range ask `admits`.

use ftp_ebpf_common::{
    control::{ControlKey, ControlState, control_flags},
    ftps::{FtpsKey, FtpsPorts, FtpsSessions},
    policy::Policy,
};

use crate::{
    addr,
    headers::PacketInfo,
    maps::{FTPCT_CONTROL, FTPCT_FTPS},
    shared::{ScratchSlot, scratch},
};

/// The local server's control connection `key` is encrypted from now on:
/// with an FTPS range, its client may use it while the connection lives.
/// The key and a fresh record are built in scratch memory: this runs deep
/// in the parser's call chain, whose stack Linux 6.1 holds to 512 bytes.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
pub fn encrypted(key: &ControlKey, policy: &Policy, slot: ScratchSlot) {
    if policy.ftps_lo == 0 {
        return;
    }
    let Some(scratch) = scratch(slot) else {
        return;
    };
    let fkey = &mut scratch.ftps_key;
    fkey.family = key.family;
    addr::copy(&mut fkey.client, &key.client);
    addr::copy(&mut fkey.server, &key.server);
    let ports = FtpsPorts {
        client_port: key.client_port,
        server_port: key.server_port,
    };
    if let Some(sessions) = FTPCT_FTPS.get_ptr_mut(&*fkey) {
        // SAFETY: pointer from a successful lookup; a concurrent update
        // of the same entry can at worst lose one record (fail closed).
        unsafe { (*sessions).record(ports) };
        return;
    }
    scratch.ftps_fresh = FtpsSessions::default();
    scratch.ftps_fresh.slots[0] = ports;
    let _ = FTPCT_FTPS.insert(&scratch.ftps_key, &scratch.ftps_fresh, 0);
}

/// Whether the SYN `info` (to a port in the FTPS range) comes from the
/// client of a live encrypted control connection to the address it
/// connects to: one recorded for the pair, still in the control table,
/// encrypted, with the local end as its server. Keys go to the helpers by
/// reference: by value they would be copied again.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(never)]
pub fn admits(info: &PacketInfo) -> bool {
    let fkey = FtpsKey::new(info.family, info.src, info.dst);
    // SAFETY: read-only look at a value from a successful lookup.
    let Some(sessions) = (unsafe { FTPCT_FTPS.get(&fkey) }) else {
        return false;
    };
    for slot in sessions.slots.iter() {
        if slot.client_port == 0 {
            continue;
        }
        let key = ControlKey::new(
            info.family,
            info.src,
            slot.client_port,
            info.dst,
            slot.server_port,
        );
        // SAFETY: read-only look at a value from a successful lookup.
        let live = unsafe { FTPCT_CONTROL.get(&key) }.is_some_and(encrypted_server);
        if live {
            return true;
        }
    }
    false
}

/// An encrypted control connection whose local end is the server.
#[inline(always)]
fn encrypted_server(state: &ControlState) -> bool {
    let want = control_flags::LOCAL_SERVER | control_flags::TLS;
    state.flags & want == want
}
