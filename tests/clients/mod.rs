//! FTP and TCP clients run inside a lab namespace: curl, lftp, Python
//! ftplib, an interactive ftplib session, a bare TCP connect probe, and a
//! TCP echo listener and client.

pub mod curl;
pub mod lftp;
mod line_child;
pub mod python;
pub mod session;
pub mod tcp;

pub use curl::{curl_download, curl_upload};
pub use lftp::{lftp_download, lftp_download_mode, lftp_list, lftp_upload};
pub use python::{ConnectResult, ftplib_download, ftplib_long_session, probe_all, tcp_connect};
pub use session::FtpSession;
pub use tcp::{EchoClient, EchoServer};

/// How the data connection of a transfer is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferMode {
    /// Passive, `PASV` (IPv4 only on the wire; curl uses EPSV on IPv6).
    Pasv,
    /// Extended passive, `EPSV`.
    Epsv,
    /// Active, `PORT` (IPv4 only on the wire; curl uses EPRT on IPv6).
    Port,
    /// Extended active, `EPRT`.
    Eprt,
}

impl TransferMode {
    /// All four modes.
    pub const ALL: [TransferMode; 4] = [
        TransferMode::Pasv,
        TransferMode::Epsv,
        TransferMode::Port,
        TransferMode::Eprt,
    ];

    /// Whether the client connects to the server (passive modes).
    pub fn is_passive(self) -> bool {
        matches!(self, TransferMode::Pasv | TransferMode::Epsv)
    }

    /// Lower-case name, as used by the Python helper (`pasv`, `epsv`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMode::Pasv => "pasv",
            TransferMode::Epsv => "epsv",
            TransferMode::Port => "port",
            TransferMode::Eprt => "eprt",
        }
    }
}
