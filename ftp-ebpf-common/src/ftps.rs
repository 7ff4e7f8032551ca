//! FTPS without inspection (`--ftps-range`): once a control connection is
//! encrypted (`AUTH TLS` accepted, or connected to the implicit-FTPS port)
//! ftpct cannot read its announcements, so its client, and nobody else, may
//! connect to the server's passive range while that control connection
//! lives. `FTPCT_FTPS` remembers, per client and server address, the control
//! connections that qualify; a SYN into the range is admitted only if one
//! of them is still in `FTPCT_CONTROL` and encrypted.

use crate::Addr;

/// The implicit-FTPS control port (IANA `ftps`, RFC 4217 section 4): a
/// control connection to it is encrypted from its first byte.
pub const IMPLICIT_FTPS_PORT: u16 = 990;

/// Encrypted control connections remembered per client and server address;
/// a further one replaces the one in its slot (its client's range access
/// then rests on the others).
pub const FTPS_SLOTS: usize = 8;

/// Key of `FTPCT_FTPS`: a client address and the local server address it
/// holds encrypted control connections to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FtpsKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Always 0.
    pub _pad: [u8; 3],
    /// The FTP client's address.
    pub client: Addr,
    /// The local FTP server's address.
    pub server: Addr,
}

impl FtpsKey {
    /// The key of `client`'s control connections to `server`.
    #[inline(always)]
    pub const fn new(family: u8, client: Addr, server: Addr) -> Self {
        Self {
            family,
            _pad: [0; 3],
            client,
            server,
        }
    }
}

/// One encrypted control connection: its client's and server's ports (the
/// addresses are the key's). All zero: an empty slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FtpsPorts {
    pub client_port: u16,
    pub server_port: u16,
}

/// Value of `FTPCT_FTPS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FtpsSessions {
    pub slots: [FtpsPorts; FTPS_SLOTS],
}

impl FtpsSessions {
    /// Records the connection `ports`: in its own slot if it has one, else
    /// in the slot its client port picks (an empty one or not).
    #[inline(always)]
    pub fn record(&mut self, ports: FtpsPorts) {
        for slot in self.slots.iter() {
            if *slot == ports {
                return;
            }
        }
        let mut at = usize::from(ports.client_port) % FTPS_SLOTS;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.client_port == 0 {
                at = i;
                break;
            }
        }
        self.slots[at] = ports;
    }
}
