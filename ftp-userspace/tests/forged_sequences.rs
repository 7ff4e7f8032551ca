//! Forged segments interleaved into real control sessions never create an
//! expectation, and never cost a real announcement its own. Needs root.
//!
//! Hundreds of real sessions run interleaved, each on a client port of its
//! own, over IPv4 and IPv6, with this host as the FTP server (`PASV`/`EPSV`
//! answered with `227`/`229`) or as the client (`PORT`/`EPRT`). Between every
//! two real segments 0-5 forged ones arrive from outside (ingress only: an
//! attacker cannot send on the host's egress): on the session's own 4-tuple
//! and direction with random flags, sequence and acknowledgment numbers and
//! payloads cut from real control lines (announcements naming ports of the
//! attacker's choosing, `PORT`/`EPRT` naming the client or third parties,
//! `AUTH TLS`/`234`, error replies, multi-line, bare-LF and echo shapes) or
//! random bytes; the same mirrored (the local end's address as source); on
//! 4-tuples without control state; and to guarded ports.
//!
//! Every announcement names a port of its own, and no forged payload names
//! one of those, so an expectation forged input created shows in the table:
//! after every session the table must hold exactly the real announcements
//! not yet used. Each real announcement's expectation is checked right after
//! it (and, for `PORT`/`EPRT`, again after the server's `200`), SYNs to it
//! from anyone but the announced peer must drop, and the announced peer's
//! SYN must pass. Finally, no forged byte may have been parsed at all:
//! `control_payloads` counts exactly the real segments with payload.
//!
//! Deterministic: the seed is printed with any failure and can be set with
//! FTPCT_RANDOM_SEED.

mod common;

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    net::IpAddr,
};

use aya::maps::{HashMap, MapData};
use common::{
    ACK, FIN, Harness, PSH, RST, Rng, SYN, Segment, TC_ACT_OK, XDP_DROP, XDP_PASS, expect_key,
};
use ftp_ebpf_common::{
    counters::{Counter, INGRESS_VERDICTS},
    flow::{ExpectKey, ExpectValue, expect_kind},
    map_names,
};

/// Real control sessions.
const SESSIONS: usize = 1000;
/// Sessions under way at once (their segments interleave).
const CONCURRENT: usize = 6;
/// Client ports of the sessions: `FIRST_CPORT + session`.
const FIRST_CPORT: u16 = 20_000;
/// Announced ports: `FIRST_ANNOUNCED + n`, a fresh one per announcement.
const FIRST_ANNOUNCED: u16 = 40_000;
/// Announced ports stay below this; forged payloads name none of this range.
const ANNOUNCED_END: u16 = 45_000;
/// Client ports of forged segments on 4-tuples no session uses.
const STRAY_CPORTS: (u16, u16) = (10_000, 19_999);
/// Trace lines kept per session for failure messages.
const TRACE: usize = 24;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// This host as an FTP server.
fn local_server_addr(v6: bool, n: u64) -> IpAddr {
    if v6 {
        ip(&format!("2001:db8:1::{}", 1 + n % 2))
    } else {
        ip(&format!("198.18.{}.1", n % 2))
    }
}

/// Remote FTP clients of the local server: 16 per family (IPv6 in /64s of
/// their own, the unit of the per-client cap).
fn remote_client_addr(v6: bool, n: u64) -> IpAddr {
    if v6 {
        ip(&format!("2001:db8:2:{:x}::2", n % 16))
    } else {
        ip(&format!("198.18.2.{}", 1 + n % 16))
    }
}

/// This host as an FTP client.
fn local_client_addr(v6: bool, n: u64) -> IpAddr {
    if v6 {
        ip(&format!("2001:db8:3:{:x}::1", n % 8))
    } else {
        ip(&format!("198.18.3.{}", 1 + n % 8))
    }
}

/// Remote FTP servers of the local client.
fn remote_server_addr(v6: bool, n: u64) -> IpAddr {
    if v6 {
        ip(&format!("2001:db8:4::{}", 1 + n % 8))
    } else {
        ip(&format!("198.18.4.{}", 1 + n % 8))
    }
}

/// Addresses only forged segments come from: never a session's peer.
fn intruder_addr(rng: &mut Rng, v6: bool) -> IpAddr {
    match (v6, rng.below(3)) {
        (false, 0) => ip(common::INTRUDER),
        (false, _) => ip(&format!("198.19.{}.{}", rng.below(256), 1 + rng.below(254))),
        (true, _) => ip(&format!(
            "2001:db8:bad:{:x}::{:x}",
            rng.below(0x1_0000),
            1 + rng.below(0xfffe)
        )),
    }
}

/// An address next to `addr` that belongs to nobody (the same /64 for IPv6).
fn neighbour(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            o[3] ^= 0x80;
            IpAddr::from(o)
        }
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o[15] ^= 0x80;
            IpAddr::from(o)
        }
    }
}

/// `h1,h2,h3,h4` of an IPv4 address (a fixed one for IPv6).
fn commas(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{},{},{},{}", o[0], o[1], o[2], o[3])
        }
        IpAddr::V6(_) => "198,18,0,1".to_string(),
    }
}

/// One step of a real session's script.
enum Step {
    /// A real segment, by the client or by the server.
    Send {
        by_client: bool,
        flags: u8,
        payload: Vec<u8>,
    },
    /// The segment before announced `port`: its expectation exists now.
    Announced { port: u16, kind: u8 },
    /// The server's `200` to a `PORT`/`EPRT`: the expectation is still there.
    StillLive { port: u16, kind: u8 },
    /// The announced peer opens the data connection.
    Connect { port: u16, kind: u8 },
}

/// A real control session and where it is.
struct Session {
    id: usize,
    /// This host is the FTP client (else the server).
    local_client: bool,
    client: IpAddr,
    cport: u16,
    server: IpAddr,
    /// Next sequence number client → server and server → client.
    c2s: u32,
    s2c: u32,
    steps: Vec<Step>,
    at: usize,
    /// The remote end sent its FIN.
    remote_fin: bool,
    trace: Vec<String>,
}

impl Session {
    /// The remote end's address and port, then the local end's.
    fn remote_and_local(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        let (client, server) = ((self.client, self.cport), (self.server, 21));
        if self.local_client {
            (server, client)
        } else {
            (client, server)
        }
    }
    /// Where the remote end's stream is: the next byte it sends.
    fn remote_next(&self) -> u32 {
        if self.local_client {
            self.s2c
        } else {
            self.c2s
        }
    }
    /// The remote end's next byte as the data path counts: a remote FIN
    /// (ignored on control connections) takes no sequence number there.
    fn remote_next_parsed(&self) -> u32 {
        self.remote_next().wrapping_sub(u32::from(self.remote_fin))
    }
    /// Where the local end's stream is.
    fn local_next(&self) -> u32 {
        if self.local_client {
            self.c2s
        } else {
            self.s2c
        }
    }
    /// The expectation an announcement of `port` of `kind` makes.
    fn expect_key(&self, port: u16, kind: u8) -> ExpectKey {
        let (src, dst) = if kind == expect_kind::PASV || kind == expect_kind::EPSV {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        key_of(src, dst, port)
    }
    fn note(&mut self, line: String) {
        if self.trace.len() == TRACE {
            self.trace.remove(0);
        }
        self.trace.push(line);
    }
}

fn key_of(src: IpAddr, dst: IpAddr, port: u16) -> ExpectKey {
    expect_key(&src.to_string(), &dst.to_string(), port)
}

fn segment(
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
) -> Segment {
    Segment {
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags,
        payload,
        options: Vec::new(),
        vlans: Vec::new(),
    }
}

/// `addr:port`, `[addr]:port` for IPv6.
fn endpoint(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

fn describe(tag: &str, s: &Segment) -> String {
    format!(
        "{tag} {} > {} flags {:#04x} seq {} ack {} {:?}",
        endpoint(s.src, s.sport),
        endpoint(s.dst, s.dport),
        s.flags,
        s.seq,
        s.ack,
        String::from_utf8_lossy(&s.payload)
    )
}

/// Builds a session's script: handshake, banner, login, 1-3 announcements
/// (each used by the peer or left live), `QUIT`, close.
fn script(rng: &mut Rng, id: usize, next_port: &mut u16) -> Session {
    let v6 = rng.percent(30);
    let local_client = rng.percent(50);
    let n = rng.next();
    let (client, server) = if local_client {
        (local_client_addr(v6, n), remote_server_addr(v6, n >> 8))
    } else {
        (remote_client_addr(v6, n), local_server_addr(v6, n >> 8))
    };
    let mut steps = Vec::new();
    // Real segments: split in two at a random byte now and then.
    let send = |rng: &mut Rng, steps: &mut Vec<Step>, by_client: bool, text: &[u8]| {
        let cut = if text.len() > 2 && rng.percent(15) {
            1 + rng.below(text.len() as u64 - 1) as usize
        } else {
            text.len()
        };
        for part in [&text[..cut], &text[cut..]] {
            if !part.is_empty() {
                steps.push(Step::Send {
                    by_client,
                    flags: PSH | ACK,
                    payload: part.to_vec(),
                });
            }
        }
    };
    let bare = |by_client: bool, flags: u8| Step::Send {
        by_client,
        flags,
        payload: Vec::new(),
    };
    steps.push(bare(true, SYN));
    steps.push(bare(false, SYN | ACK));
    steps.push(bare(true, ACK));
    if rng.percent(30) {
        send(
            rng,
            &mut steps,
            false,
            b"220-Welcome to the test server.\r\n",
        );
        send(rng, &mut steps, false, b"220-Be nice.\r\n220 Ready.\r\n");
    } else {
        send(rng, &mut steps, false, b"220 (vsFTPd 3.0.3)\r\n");
    }
    for (cmd, reply) in [
        (
            &b"USER anonymous\r\n"[..],
            &b"331 Please specify the password.\r\n"[..],
        ),
        (&b"PASS guest@\r\n"[..], &b"230 Login successful.\r\n"[..]),
        (
            &b"TYPE I\r\n"[..],
            &b"200 Switching to Binary mode.\r\n"[..],
        ),
    ] {
        send(rng, &mut steps, true, cmd);
        send(rng, &mut steps, false, reply);
    }
    for i in 0..1 + rng.below(3) {
        let port = *next_port;
        *next_port += 1;
        assert!(port < ANNOUNCED_END, "too many announcements for the range");
        let (p1, p2) = (port / 256, port % 256);
        let kind;
        if local_client {
            let cmd = match (v6, rng.below(2)) {
                (false, 0) => {
                    kind = expect_kind::PORT;
                    format!("PORT {},{p1},{p2}\r\n", commas(client))
                }
                (false, _) => {
                    kind = expect_kind::EPRT;
                    format!("EPRT |1|{client}|{port}|\r\n")
                }
                (true, _) => {
                    kind = expect_kind::EPRT;
                    format!("EPRT |2|{client}|{port}|\r\n")
                }
            };
            // A local client's PORT/EPRT leaves on egress: it is genuine,
            // and expected from then on.
            send(rng, &mut steps, true, cmd.as_bytes());
            steps.push(Step::Announced { port, kind });
            send(rng, &mut steps, false, b"200 PORT command successful.\r\n");
            steps.push(Step::StillLive { port, kind });
        } else {
            let reply = if !v6 && rng.percent(50) {
                kind = expect_kind::PASV;
                send(rng, &mut steps, true, b"PASV\r\n");
                format!(
                    "227 Entering Passive Mode ({},{p1},{p2}).\r\n",
                    commas(server)
                )
            } else {
                kind = expect_kind::EPSV;
                send(rng, &mut steps, true, b"EPSV\r\n");
                format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
            };
            send(rng, &mut steps, false, reply.as_bytes());
            steps.push(Step::Announced { port, kind });
        }
        send(
            rng,
            &mut steps,
            true,
            format!("RETR file{i}\r\n").as_bytes(),
        );
        if rng.percent(70) {
            steps.push(Step::Connect { port, kind });
            send(
                rng,
                &mut steps,
                false,
                b"150 Opening BINARY mode data connection.\r\n",
            );
            send(rng, &mut steps, false, b"226 Transfer complete.\r\n");
        } else {
            // Left unused: it lives until the session ends.
            send(
                rng,
                &mut steps,
                false,
                b"425 Failed to establish connection.\r\n",
            );
        }
    }
    send(rng, &mut steps, true, b"QUIT\r\n");
    send(rng, &mut steps, false, b"221 Goodbye.\r\n");
    // The local end's FIN ends the control state, and the unused
    // announcements with it; the remote's is ignored.
    let remote_first = rng.percent(50);
    let first = remote_first != local_client;
    steps.push(bare(first, FIN | ACK));
    steps.push(bare(!first, FIN | ACK));
    steps.push(bare(first, ACK));
    Session {
        id,
        local_client,
        client,
        cport: FIRST_CPORT + id as u16,
        server,
        c2s: rng.next() as u32,
        s2c: rng.next() as u32,
        steps,
        at: 0,
        remote_fin: false,
        trace: Vec::new(),
    }
}

/// A port a forged payload may name: never an announced one.
fn forged_port(rng: &mut Rng) -> u16 {
    match rng.below(4) {
        0 => rng.port(1, 1023),
        1 => rng.port(1024, FIRST_ANNOUNCED - 1),
        _ => rng.port(ANNOUNCED_END, 65_535),
    }
}

/// A forged payload: real control lines (1-3 of them, maybe cut mid-line),
/// or random bytes, or nothing.
fn forged_payload(rng: &mut Rng, s: &Session) -> Vec<u8> {
    match rng.below(10) {
        0 => return Vec::new(),
        1 => return (0..1 + rng.below(120)).map(|_| rng.byte()).collect(),
        _ => {}
    }
    let mut text = String::new();
    for _ in 0..1 + rng.below(3) {
        let port = forged_port(rng);
        let (p1, p2) = (port / 256, port % 256);
        let srv = commas(s.server);
        let cli = commas(s.client);
        let third = intruder_addr(rng, false);
        let third6 = intruder_addr(rng, true);
        let lines = [
            format!("227 Entering Passive Mode ({srv},{p1},{p2}).\r\n"),
            format!(
                "227 Entering Passive Mode ({},{p1},{p2})\r\n",
                commas(third)
            ),
            format!("227 ={srv},{p1},{p2}\r\n"),
            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n"),
            format!("229 (!!!{port}!)\r\n"),
            format!("PORT {cli},{p1},{p2}\r\n"),
            format!("PORT {},{p1},{p2}\r\n", commas(third)),
            format!("EPRT |1|{}|{port}|\r\n", cli.replace(',', ".")),
            format!("EPRT |2|{}|{port}|\r\n", s.client),
            format!("EPRT |2|{third6}|{port}|\r\n"),
            "PASV\r\n".into(),
            "EPSV\r\n".into(),
            "EPSV ALL\r\n".into(),
            "AUTH TLS\r\n".into(),
            "234 AUTH TLS OK.\r\n".into(),
            "200 PORT command successful.\r\n".into(),
            "220 Service ready.\r\n".into(),
            "150 Here comes the directory listing.\r\n".into(),
            "425 Use PORT or PASV first.\r\n".into(),
            "500 Unknown command.\r\n".into(),
            "421 Timeout.\r\n".into(),
            "NOOP\r\n".into(),
            "\r\n".into(),
            // Multi-line replies and fragments of them.
            "227-Entering Passive Mode\r\n".into(),
            format!("227 ({srv},{p1},{p2})\r\n"),
            format!(" 227 Entering Passive Mode ({srv},{p1},{p2})\r\n"),
            format!("230-Welcome\r\n227 Entering Passive Mode ({srv},{p1},{p2})\r\n230 In.\r\n"),
            format!("213-Status\r\n229 Entering Extended Passive Mode (|||{port}|)\r\n213 End\r\n"),
            // Bare LF line ends.
            format!("200 ok\n227 Entering Passive Mode ({srv},{p1},{p2})\n"),
            format!("229 (|||{port}|)\n"),
            format!("NOOP\nPORT {cli},{p1},{p2}\n"),
            "PASV\n".into(),
            // Shapes of a server echoing client text.
            format!("550 /x\n227 Entering Passive Mode ({srv},{p1},{p2})\r\n"),
            format!("550 /x\r\n229 Entering Extended Passive Mode (|||{port}|)\r\n"),
            format!("257 \"/PORT {cli},{p1},{p2}\" created\r\n"),
            format!("550 PORT {cli},{p1},{p2}\r\n: No such file\r\n"),
        ];
        let line: &String = rng.pick(&lines);
        text.push_str(line);
    }
    let mut bytes = text.into_bytes();
    if rng.percent(30) {
        let from = rng.below(bytes.len() as u64) as usize;
        let to = from + 1 + rng.below((bytes.len() - from) as u64) as usize;
        bytes = bytes[from..to].to_vec();
    }
    bytes
}

fn forged_flags(rng: &mut Rng) -> u8 {
    let random = rng.byte();
    // PSH|ACK (what data segments carry) weighs three times.
    *rng.pick(&[
        SYN,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN,
        FIN | ACK,
        ACK,
        PSH | ACK,
        PSH | ACK,
        PSH | ACK,
        0,
        random,
    ])
}

/// A forged sequence number for a stream whose next byte is `next`.
fn forged_seq(rng: &mut Rng, next: u32) -> u32 {
    match rng.below(10) {
        // Anywhere.
        0 | 1 => rng.next() as u32,
        // Near the stream, behind or ahead.
        2..=5 => next
            .wrapping_add(rng.below(6_001) as u32)
            .wrapping_sub(3_000),
        // Overlapping: starting a little before the stream's next byte.
        6 | 7 => next.wrapping_sub(1 + rng.below(64) as u32),
        // At it (data there is cut to nothing: see `reaches_next_byte`).
        8 => next,
        // Beyond any window.
        _ => next.wrapping_add(65_536 + rng.below(1 << 30) as u32),
    }
}

/// The one case excluded from the forgeries: a segment the data path would
/// parse because it reaches the next byte it reads of the stream (it starts
/// at or before it and ends after it, and carries no SYN, FIN or RST; after
/// the remote FIN, which the data path ignores, that byte is the FIN's own
/// sequence number). Returns how many of its bytes lie before that byte:
/// the forgery is cut to those, an overlap with bytes already read.
///
/// Forging one takes the exact next sequence number of the stream, which only
/// an attacker on the path has; with an ACK and an acceptable acknowledgment
/// number the kernel accepts its bytes at that position too (the real
/// segment then only retransmits them), so the peers themselves read the
/// forged text, and no data path can tell it from theirs. That is the
/// on-path injection this test leaves out.
///
/// Finding (see `finding_*` below): the data path parses such a segment
/// even when the kernel discards it (no ACK flag, or an acknowledgment
/// number beyond what the local end has sent), and then takes the real
/// segment at that position as a retransmission: a forged segment that
/// reaches the next byte costs the real line, and with it an announcement.
fn reaches_next_byte(flags: u8, seq: u32, len: usize, next: u32) -> Option<usize> {
    if flags & (SYN | FIN | RST) != 0 || len == 0 {
        return None;
    }
    let ahead = seq.wrapping_sub(next) as i32;
    let before = ahead.unsigned_abs() as usize;
    (ahead <= 0 && before < len).then_some(before)
}

#[derive(Default)]
struct Stats {
    local_client: usize,
    v6: usize,
    real: u64,
    real_payloads: u64,
    forged_same: u64,
    forged_mirrored: u64,
    forged_other: u64,
    forged_guarded: u64,
    /// Forged segments cut short so as not to reach the next byte.
    trimmed: u64,
    announced: u64,
    connects: u64,
    refused_syns: u64,
    /// Unused announcements that ended with their session.
    ended_with_session: u64,
}

/// The run: the harness, the generator, and what the table must hold.
struct Run<'h> {
    h: &'h Harness,
    seed: u64,
    rng: Rng,
    ingress: u64,
    /// Live real announcements: key → (session, port, kind).
    live: StdHashMap<ExpectKey, (usize, u16, u8)>,
    /// Finished sessions' remote ends and local ends, for forgeries later.
    finished: Vec<((IpAddr, u16), (IpAddr, u16))>,
    stats: Stats,
}

impl Run<'_> {
    fn ingress(&mut self, seg: &Segment) -> u32 {
        self.ingress += 1;
        self.h.ingress(&seg.frame())
    }

    fn lookup(&self, key: &ExpectKey) -> Option<ExpectValue> {
        let map: HashMap<&MapData, ExpectKey, ExpectValue> =
            HashMap::try_from(self.h.ebpf.map(map_names::EXPECTATIONS).expect("map"))
                .expect("hash map");
        map.get(key, 0).ok()
    }

    fn context(&self, s: &Session) -> String {
        format!(
            "seed {:#x} (FTPCT_RANDOM_SEED), session {} ({} {} > {}), step {}; last segments:\n  {}",
            self.seed,
            s.id,
            if s.local_client {
                "local client"
            } else {
                "local server"
            },
            endpoint(s.client, s.cport),
            endpoint(s.server, 21),
            s.at,
            s.trace.join("\n  ")
        )
    }

    /// 0-5 forged segments from outside, mostly on `s`'s own 4-tuple.
    fn forge(&mut self, s: &mut Session) {
        for _ in 0..self.rng.below(6) {
            match self.rng.below(20) {
                0..=13 => self.forge_on_session(s),
                14 | 15 => self.forge_mirrored(s),
                16 | 17 => self.forge_elsewhere(s),
                _ => self.forge_to_guarded(s),
            }
        }
    }

    /// From the session's remote end to its local end, as the real peer's
    /// segments arrive.
    fn forge_on_session(&mut self, s: &mut Session) {
        let (remote, local) = s.remote_and_local();
        let flags = forged_flags(&mut self.rng);
        let seq = forged_seq(&mut self.rng, s.remote_next());
        let ack = match self.rng.below(3) {
            0 => self.rng.next() as u32,
            _ => s
                .local_next()
                .wrapping_add(self.rng.below(4_001) as u32)
                .wrapping_sub(2_000),
        };
        let mut payload = forged_payload(&mut self.rng, s);
        let next = s.remote_next_parsed();
        if let Some(keep) = reaches_next_byte(flags, seq, payload.len(), next) {
            // Excluded: see `reaches_next_byte`.
            payload.truncate(keep);
            self.stats.trimmed += 1;
        }
        let seg = segment(remote, local, flags, seq, ack, payload);
        s.note(describe("forged", &seg));
        self.ingress(&seg);
        self.stats.forged_same += 1;
    }

    /// The session's 4-tuple turned round: the local end's address as the
    /// source, arriving from outside. The state belongs to the other role.
    fn forge_mirrored(&mut self, s: &mut Session) {
        let (remote, local) = s.remote_and_local();
        let flags = forged_flags(&mut self.rng);
        let seq = forged_seq(&mut self.rng, s.local_next());
        let payload = forged_payload(&mut self.rng, s);
        let seg = segment(local, remote, flags, seq, self.rng.next() as u32, payload);
        s.note(describe("mirrored", &seg));
        self.ingress(&seg);
        self.stats.forged_mirrored += 1;
    }

    /// On a 4-tuple without control state: a stray client port of the
    /// session's peer, the intruder, or a finished session.
    fn forge_elsewhere(&mut self, s: &mut Session) {
        let v6 = s.client.is_ipv6();
        let (remote, local) = s.remote_and_local();
        let stray = self.rng.port(STRAY_CPORTS.0, STRAY_CPORTS.1);
        let (from, to) = match self.rng.below(4) {
            0 if s.local_client => (remote, (local.0, stray)),
            0 => ((remote.0, stray), local),
            1 => ((intruder_addr(&mut self.rng, v6), stray), (local.0, 21)),
            2 => ((intruder_addr(&mut self.rng, v6), 21), (local.0, stray)),
            _ if self.finished.is_empty() => ((remote.0, stray), (local.0, 21)),
            _ => {
                let i = self.rng.below(self.finished.len() as u64) as usize;
                self.finished[i]
            }
        };
        let flags = forged_flags(&mut self.rng);
        let seq = self.rng.next() as u32;
        let payload = forged_payload(&mut self.rng, s);
        let seg = segment(from, to, flags, seq, self.rng.next() as u32, payload);
        s.note(describe("elsewhere", &seg));
        self.ingress(&seg);
        self.stats.forged_other += 1;
    }

    /// From an intruder to a guarded port of this host: a live announced
    /// one, one forged payloads name, or any. No flow or expectation can
    /// match an intruder's address, so it must drop whatever its flags.
    fn forge_to_guarded(&mut self, s: &mut Session) {
        let v6 = s.client.is_ipv6();
        let (_, local) = s.remote_and_local();
        let live: Vec<u16> = self
            .live
            .keys()
            .filter(|k| (k.family == 6) == v6)
            .map(|k| k.dport)
            .collect();
        let dport = match self.rng.below(5) {
            0 | 1 if !live.is_empty() => *self.rng.pick(&live),
            0 | 1 => s.cport,
            2 => forged_port(&mut self.rng).max(1024),
            _ => self.rng.port(1024, 65_535),
        };
        let flags = match self.rng.below(2) {
            0 => SYN,
            _ => forged_flags(&mut self.rng),
        };
        let from = (intruder_addr(&mut self.rng, v6), self.rng.port(1, 65_535));
        let payload = if self.rng.percent(20) {
            forged_payload(&mut self.rng, s)
        } else {
            Vec::new()
        };
        let seg = segment(
            from,
            (local.0, dport),
            flags,
            self.rng.next() as u32,
            self.rng.next() as u32,
            payload,
        );
        s.note(describe("guarded", &seg));
        let verdict = self.ingress(&seg);
        assert_eq!(
            verdict,
            XDP_DROP,
            "an intruder's segment to guarded port {dport} passed\n{}",
            self.context(s)
        );
        self.stats.forged_guarded += 1;
    }

    /// Runs the session's next step; `true` when it is over.
    fn step(&mut self, s: &mut Session) -> bool {
        let i = s.at;
        s.at += 1;
        match &s.steps[i] {
            Step::Send {
                by_client,
                flags,
                payload,
            } => {
                let (by_client, flags, payload) = (*by_client, *flags, payload.clone());
                self.send_real(s, by_client, flags, payload);
                // The checks of what it announced follow at once, before
                // anything else (and before any table check).
                if matches!(
                    s.steps.get(s.at),
                    Some(Step::Announced { .. } | Step::StillLive { .. })
                ) {
                    return self.step(s);
                }
            }
            &Step::Announced { port, kind } => {
                self.announced(s, port, kind);
                self.syns_from_others(s, port, kind);
            }
            &Step::StillLive { port, kind } => {
                let key = s.expect_key(port, kind);
                assert!(
                    self.lookup(&key).is_some(),
                    "the expectation of port {port} is gone after the server's 200\n{}",
                    self.context(s)
                );
            }
            &Step::Connect { port, kind } => self.connect(s, port, kind),
        }
        s.at == s.steps.len()
    }

    fn send_real(&mut self, s: &mut Session, by_client: bool, flags: u8, payload: Vec<u8>) {
        let (client, server) = ((s.client, s.cport), (s.server, 21));
        let (from, to, seq, ack) = if by_client {
            (client, server, s.c2s, s.s2c)
        } else {
            (server, client, s.s2c, s.c2s)
        };
        let ack = if flags & ACK != 0 { ack } else { 0 };
        let len = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        if !payload.is_empty() {
            self.stats.real_payloads += 1;
        }
        let seg = segment(from, to, flags, seq, ack, payload);
        s.note(describe("real", &seg));
        if by_client {
            s.c2s = s.c2s.wrapping_add(len);
        } else {
            s.s2c = s.s2c.wrapping_add(len);
        }
        if by_client != s.local_client && flags & FIN != 0 {
            s.remote_fin = true;
        }
        if by_client == s.local_client && flags & (FIN | RST) != 0 {
            let before = self.live.len();
            self.live.retain(|_, (id, _, _)| *id != s.id);
            self.stats.ended_with_session += (before - self.live.len()) as u64;
        }
        self.stats.real += 1;
        if by_client == s.local_client {
            let action = self.h.egress(&seg.frame());
            assert_eq!(action, TC_ACT_OK, "{}", self.context(s));
        } else {
            let verdict = self.ingress(&seg);
            assert_eq!(
                verdict,
                XDP_PASS,
                "a real segment dropped\n{}",
                self.context(s)
            );
        }
    }

    /// Right after a real announcement: its expectation is in the table.
    fn announced(&mut self, s: &Session, port: u16, kind: u8) {
        let key = s.expect_key(port, kind);
        let value = self.lookup(&key).unwrap_or_else(|| {
            panic!(
                "the real announcement of port {port} created no expectation\n{}",
                self.context(s)
            )
        });
        assert_eq!(
            (value.kind, value.ctrl_client_port),
            (kind, s.cport),
            "{}",
            self.context(s)
        );
        self.live.insert(key, (s.id, port, kind));
        self.stats.announced += 1;
    }

    /// SYNs to an announced port from anyone but the announced peer, or to
    /// another local address: all drop, and the expectation stays.
    fn syns_from_others(&mut self, s: &mut Session, port: u16, kind: u8) {
        let key = s.expect_key(port, kind);
        let (peer, announcer) = if kind == expect_kind::PASV || kind == expect_kind::EPSV {
            (s.client, s.server)
        } else {
            (s.server, s.client)
        };
        let v6 = s.client.is_ipv6();
        for _ in 0..2 + self.rng.below(3) {
            let (src, dst) = match self.rng.below(5) {
                0 => (intruder_addr(&mut self.rng, v6), announcer),
                1 => (neighbour(peer), announcer),
                2 => (announcer, announcer),
                3 => (peer, neighbour(announcer)),
                // Another session's peer.
                _ => {
                    let n = self.rng.next();
                    let other = if n & 1 == 0 {
                        remote_client_addr(v6, n >> 1)
                    } else {
                        remote_server_addr(v6, n >> 1)
                    };
                    (other, announcer)
                }
            };
            if src == peer && dst == announcer {
                continue;
            }
            let seg = segment(
                (src, self.rng.port(1, 65_535)),
                (dst, port),
                SYN,
                self.rng.next() as u32,
                0,
                Vec::new(),
            );
            s.note(describe("syn", &seg));
            let verdict = self.ingress(&seg);
            assert_eq!(
                verdict,
                XDP_DROP,
                "a SYN to announced port {port} from {src} to {dst} passed\n{}",
                self.context(s)
            );
            self.stats.refused_syns += 1;
        }
        assert!(
            self.lookup(&key).is_some(),
            "a stranger's SYN consumed the expectation of port {port}\n{}",
            self.context(s)
        );
    }

    /// The announced peer opens the data connection: its SYN passes and
    /// uses the expectation up.
    fn connect(&mut self, s: &mut Session, port: u16, kind: u8) {
        let key = s.expect_key(port, kind);
        let (peer, announcer) = if kind == expect_kind::PASV || kind == expect_kind::EPSV {
            (s.client, s.server)
        } else {
            (s.server, s.client)
        };
        let sport = if kind == expect_kind::PORT && self.rng.percent(50) {
            20
        } else {
            self.rng.port(1024, 65_535)
        };
        let seg = segment(
            (peer, sport),
            (announcer, port),
            SYN,
            self.rng.next() as u32,
            0,
            Vec::new(),
        );
        s.note(describe("data", &seg));
        let verdict = self.ingress(&seg);
        assert_eq!(
            verdict,
            XDP_PASS,
            "the announced peer's SYN to port {port} dropped\n{}",
            self.context(s)
        );
        assert!(self.lookup(&key).is_none(), "{}", self.context(s));
        self.live.remove(&key);
        self.stats.connects += 1;
    }

    /// The table holds exactly the live real announcements.
    fn check_table(&self, what: &str) {
        let entries = self.h.expectations();
        let keys: HashSet<ExpectKey> = entries.iter().map(|(k, _)| *k).collect();
        for (key, value) in &entries {
            assert!(
                self.live.contains_key(key),
                "seed {:#x}: {what}: an expectation no real announcement made: {key:?} {value:?}",
                self.seed
            );
        }
        for (key, (id, port, _)) in &self.live {
            assert!(
                keys.contains(key),
                "seed {:#x}: {what}: session {id}'s expectation of port {port} is gone",
                self.seed
            );
        }
    }
}

#[test]
fn forged_segments_neither_create_nor_cost_expectations() {
    let seed = Rng::from_env(0xf0_4ced_5e95).0;
    let h = Harness::new();
    let mut run = Run {
        h: &h,
        seed,
        rng: Rng(seed),
        ingress: 0,
        live: StdHashMap::new(),
        finished: Vec::new(),
        stats: Stats::default(),
    };
    let mut next_port = FIRST_ANNOUNCED;
    let mut started = 0;
    let mut active: Vec<Session> = Vec::new();
    while started < SESSIONS || !active.is_empty() {
        while active.len() < CONCURRENT && started < SESSIONS {
            let s = script(&mut run.rng, started, &mut next_port);
            run.stats.local_client += usize::from(s.local_client);
            run.stats.v6 += usize::from(s.client.is_ipv6());
            active.push(s);
            started += 1;
        }
        let i = run.rng.below(active.len() as u64) as usize;
        run.forge(&mut active[i]);
        if run.step(&mut active[i]) {
            let s = active.swap_remove(i);
            run.finished.push(s.remote_and_local());
            run.check_table(&format!("after session {}", s.id));
        }
    }
    run.check_table("at the end");
    let stats = &run.stats;

    // No forged byte was parsed: the parser saw the real segments only.
    assert_eq!(
        h.counter(Counter::ControlPayloads),
        stats.real_payloads,
        "seed {seed:#x}: forged payload was parsed"
    );
    for counter in [
        Counter::ControlGaps,
        Counter::ControlTls,
        Counter::RefusedUncorrelated,
        Counter::ExpectWithdrawn,
        Counter::ExpectReplaced,
        Counter::RefusedClientLimit,
        Counter::RefusedNotFtp,
    ] {
        assert_eq!(h.counter(counter), 0, "seed {seed:#x}: {}", counter.name());
    }
    let created: u64 = [
        Counter::ExpectPasv,
        Counter::ExpectEpsv,
        Counter::ExpectPort,
        Counter::ExpectEprt,
    ]
    .iter()
    .map(|c| h.counter(*c))
    .sum();
    assert_eq!(created, stats.announced, "seed {seed:#x}");
    assert!(
        stats.ended_with_session > 0,
        "seed {seed:#x}: no session left one"
    );
    assert_eq!(
        h.counter(Counter::ExpectDroppedControlClosed),
        stats.ended_with_session,
        "seed {seed:#x}"
    );

    // What is left still works, for its peer only.
    let live: Vec<(ExpectKey, (usize, u16, u8))> = run.live.iter().map(|(k, v)| (*k, *v)).collect();
    let left = live.len();
    for (key, _) in &live {
        let addr = |a: &[u8; 16]| -> IpAddr {
            if key.family == 4 {
                IpAddr::from([a[0], a[1], a[2], a[3]])
            } else {
                IpAddr::from(*a)
            }
        };
        let (src, dst) = (addr(&key.src), addr(&key.dst));
        let intruder = intruder_addr(&mut run.rng, key.family == 6);
        let syn = |from| segment(from, (dst, key.dport), SYN, 7, 0, Vec::new());
        assert_eq!(run.ingress(&syn((intruder, 40_000))), XDP_DROP);
        assert_eq!(
            run.ingress(&syn((src, 40_000))),
            XDP_PASS,
            "seed {seed:#x}: {key:?}"
        );
    }
    assert!(h.expectations().is_empty(), "seed {seed:#x}");
    assert_eq!(
        h.counter(Counter::SynAdmitted),
        run.stats.connects + left as u64,
        "seed {seed:#x}"
    );

    // Every path of the program counts each packet exactly once, by verdict.
    let verdicts: u64 = INGRESS_VERDICTS.iter().map(|c| h.counter(*c)).sum();
    assert_eq!(verdicts, run.ingress, "verdict counters must add up");

    let stats = &run.stats;
    let forged =
        stats.forged_same + stats.forged_mirrored + stats.forged_other + stats.forged_guarded;
    eprintln!(
        "{SESSIONS} sessions ({} local client, {} IPv6), {} real segments, {forged} forged \
         ({} on live control connections, {} trimmed before the next byte; {} mirrored; \
         {} on other 4-tuples; {} to guarded ports), {} announcements all created, \
         {} SYNs from others to them dropped; control_out_of_order {}, \
         control_out_of_window {}, control_syn_ignored {}, control_retransmits {}",
        stats.local_client,
        stats.v6,
        stats.real,
        stats.forged_same,
        stats.trimmed,
        stats.forged_mirrored,
        stats.forged_other,
        stats.forged_guarded,
        stats.announced,
        stats.refused_syns,
        h.counter(Counter::ControlOutOfOrder),
        h.counter(Counter::ControlOutOfWindow),
        h.counter(Counter::ControlSynIgnored),
        h.counter(Counter::ControlRetransmits),
    );
}

// Finding (data path), excluded from the test above (`reaches_next_byte`):
// a remote control segment is parsed whatever its ACK flag and
// acknowledgment number, so a forged segment that reaches the stream's next
// byte is read as the peer's text even when the kernel discards it (no ACK:
// Linux drops it as TCP_FLAGS; an acknowledgment beyond what the local end
// sent: TCP_ACK_UNSENT_DATA). The stream then moves past the forged bytes,
// and the real segment carrying the same sequence numbers counts as a
// retransmission of them: the real line is lost, or read shifted. The kernel
// hands the peer the real bytes, so ftpct and the endpoints disagree from
// there on. It takes the exact next sequence number (give or take the
// segment's length), which only an attacker on the path sees.
// Fixed: a remote control segment is read only if it carries ACK and
// acknowledges nothing the local end has not sent; these two tests failed
// before that rule.

/// Local client: one forged byte `5` at the remote server's next sequence
/// number (riding on a segment that starts one byte earlier, without ACK)
/// turns the server's `200 PORT command successful.` into a `500` for
/// ftpct, which withdraws the expectation; the server, which read the real
/// `PORT`, connects and is dropped.
#[test]
fn finding_a_segment_without_ack_at_the_next_byte_withdraws_a_local_clients_port() {
    use common::{CLIENT, CPORT, Control};
    const REMOTE: &str = "198.18.4.1";
    let h = Harness::new();
    let mut c = Control::to_remote(&h, REMOTE);
    c.reply(b"220 hello\r\n");
    c.command(b"PORT 198,18,0,2,156,64\r\n");
    assert_eq!(h.expectations().len(), 1, "the PORT's expectation");
    let forged = Segment::new(REMOTE, 21, CLIENT, CPORT)
        .seq(c.s2c.wrapping_sub(1))
        .ack(c.c2s)
        .flags(0)
        .payload(b"\n5");
    h.ingress(&forged.frame());
    c.reply(b"200 PORT command successful.\r\n");
    assert_eq!(
        h.expectations().len(),
        1,
        "a segment the kernel discards withdrew the real PORT's expectation"
    );
    assert_eq!(h.counter(Counter::ExpectWithdrawn), 0);
}

/// Local server: one forged byte `N` at the client's next sequence number
/// (with an acknowledgment number beyond anything the server sent) turns
/// the client's `PASV` into `NASV` for ftpct; the server's real `227`
/// answers no `PASV` and opens nothing.
#[test]
fn finding_a_segment_acking_unsent_data_at_the_next_byte_costs_a_local_servers_pasv() {
    use common::{CLIENT, CPORT, Control, SERVER, pasv};
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    c.command(b"USER anonymous\r\n");
    c.reply(b"331 ok\r\n");
    let forged = Segment::new(CLIENT, CPORT, SERVER, 21)
        .seq(c.c2s.wrapping_sub(1))
        .ack(c.s2c.wrapping_add(100_000))
        .flags(ACK)
        .payload(b"\nN");
    h.ingress(&forged.frame());
    pasv(&mut c, 40_000);
    assert_eq!(
        h.expectations().len(),
        1,
        "a segment the kernel discards cost the real PASV"
    );
    assert_eq!(h.counter(Counter::RefusedUncorrelated), 0);
}
