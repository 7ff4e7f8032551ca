//! Shared by the kernel-level tests: crafted frames and a harness that runs the
//! loaded (not attached) programs on them with `BPF_PROG_TEST_RUN`.
#![allow(dead_code)]

use std::net::IpAddr;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{Program, TestRun, TestRunOptions},
};
use ftp_ebpf_common::{
    control::{ControlKey, ControlState},
    counters::Counter,
    flow::{ExpectKey, ExpectValue, FlowKey, FlowValue},
    map_names,
    policy::Policy,
    program_names,
};
use ftp_userspace::attach::{AttachConfig, load_configured};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;

/// A TCP segment to frame.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
    /// TCP options (padded with NOPs to whole words).
    pub options: Vec<u8>,
    /// 802.1Q/802.1ad tags to insert (outermost first).
    pub vlans: Vec<u16>,
}

impl Segment {
    pub fn new(src: &str, sport: u16, dst: &str, dport: u16) -> Self {
        Self {
            src: src.parse().expect("test address"),
            dst: dst.parse().expect("test address"),
            sport,
            dport,
            seq: 1000,
            ack: 0,
            flags: ACK | PSH,
            payload: Vec::new(),
            options: Vec::new(),
            vlans: Vec::new(),
        }
    }
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }
    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        while !self.options.len().is_multiple_of(4) {
            self.options.push(1);
        }
        self
    }
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }
    pub fn vlans(mut self, tags: &[u16]) -> Self {
        self.vlans = tags.to_vec();
        self
    }

    /// Ethernet frame bytes (checksums left zero: the programs do not check them).
    pub fn frame(&self) -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.push((((20 + self.options.len()) / 4) << 4) as u8);
        tcp.push(self.flags);
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(&self.options);
        tcp.extend_from_slice(&self.payload);
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for (i, tag) in self.vlans.iter().enumerate() {
            // QinQ: the outer tag is 802.1ad, inner (or single) tags 802.1Q.
            let tpid = if i == 0 && self.vlans.len() > 1 {
                [0x88, 0xa8]
            } else {
                [0x81, 0x00]
            };
            frame.extend_from_slice(&tpid);
            frame.extend_from_slice(&tag.to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                frame.extend_from_slice(&[0x08, 0x00]);
                let total = (20 + tcp.len()) as u16;
                frame.extend_from_slice(&[0x45, 0]);
                frame.extend_from_slice(&total.to_be_bytes());
                frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame.extend_from_slice(&[0x86, 0xdd]);
                frame.extend_from_slice(&[0x60, 0, 0, 0]);
                frame.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                frame.extend_from_slice(&[6, 64]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed address families in a test segment"),
        }
        frame.extend_from_slice(&tcp);
        let l4 = frame.len() - tcp.len();
        let ip = if self.src.is_ipv4() { l4 - 20 } else { l4 - 40 };
        let csum = tcp_checksum(&frame[ip..l4], &frame[l4..]);
        frame[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
        if self.src.is_ipv4() {
            let csum = !ones_sum(&frame[ip..l4]);
            frame[ip + 10..ip + 12].copy_from_slice(&csum.to_be_bytes());
        }
        frame
    }
}

/// The ones'-complement sum of `bytes` as 16-bit words, folded.
fn ones_sum(bytes: &[u8]) -> u16 {
    let mut sum = 0u64;
    for chunk in bytes.chunks(2) {
        sum += u64::from(chunk[0]) << 8 | chunk.get(1).map_or(0, |&b| u64::from(b));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether the IPv4 header checksum of an untagged IPv4 `frame` is right
/// (true for IPv6, which has none).
pub fn ip_checksum_ok(frame: &[u8]) -> bool {
    if frame[14] >> 4 == 6 {
        return true;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    ones_sum(&frame[14..14 + ihl]) == 0xffff
}

/// The TCP checksum `seg` should carry behind the IP header `ip` (its own
/// checksum field taken as zero).
pub fn tcp_checksum(ip: &[u8], seg: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    if ip[0] >> 4 == 4 {
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
    }
    let mut body = seg.to_vec();
    body[16] = 0;
    body[17] = 0;
    pseudo.extend_from_slice(&body);
    !ones_sum(&pseudo)
}

/// Whether the TCP checksum of `frame` (an untagged IPv4 or IPv6 frame) is right.
pub fn checksum_ok(frame: &[u8]) -> bool {
    // The segment ends where the IP header says, not where the frame does.
    let (l4, end) = if frame[12..14] == [0x86, 0xdd] {
        (
            54,
            54 + usize::from(u16::from_be_bytes([frame[18], frame[19]])),
        )
    } else {
        let tot = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        (14 + usize::from(frame[14] & 0x0f) * 4, 14 + tot)
    };
    let stored = u16::from_be_bytes([frame[l4 + 16], frame[l4 + 17]]);
    end <= frame.len() && tcp_checksum(&frame[14..l4], &frame[l4..end]) == stored
}

/// The programs loaded with the default policy, run with `BPF_PROG_TEST_RUN`.
pub struct Harness {
    pub ebpf: Ebpf,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(AttachConfig::with_defaults("lo"))
    }

    pub fn with(cfg: AttachConfig) -> Self {
        let ebpf = load_configured(&cfg).expect("loading the programs (are we root?)");
        Self { ebpf }
    }

    /// Runs the XDP program on a frame; returns the XDP action.
    pub fn ingress(&self, frame: &[u8]) -> u32 {
        self.run(program_names::INGRESS, frame)
    }

    /// Runs the TC program on a frame; returns the TC action.
    pub fn egress(&self, frame: &[u8]) -> u32 {
        self.run(program_names::EGRESS, frame)
    }

    /// Runs the XDP program on a frame; returns the XDP action and the frame
    /// as the program left it.
    pub fn ingress_frame(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_frame(program_names::INGRESS, frame)
    }

    /// Runs the TC program on a frame; returns the TC action and the frame
    /// as the program left it.
    pub fn egress_frame(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_frame(program_names::EGRESS, frame)
    }

    fn run(&self, name: &str, frame: &[u8]) -> u32 {
        self.run_frame(name, frame).0
    }

    /// Runs the TC program on `frame` as a GSO super-segment of `segs`
    /// segments (`__sk_buff.gso_segs`); the action and the frame that leaves.
    pub fn egress_frame_gso(&self, frame: &[u8], segs: u32) -> (u32, Vec<u8>) {
        // struct __sk_buff: 192 bytes, `gso_segs` at offset 164; the kernel
        // takes only the fields a test run may set and wants the rest zero.
        let mut ctx = [0u8; 192];
        ctx[164..168].copy_from_slice(&segs.to_ne_bytes());
        self.run_frame_ctx(program_names::EGRESS, frame, Some(&ctx))
    }

    fn run_frame(&self, name: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_frame_ctx(name, frame, None)
    }

    fn run_frame_ctx(&self, name: &str, frame: &[u8], ctx: Option<&[u8]>) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ctx,
            ..Default::default()
        };
        let result = match self.ebpf.program(name).expect("program in the object") {
            Program::Xdp(p) => p.test_run(opts),
            Program::SchedClassifier(p) => p.test_run(opts),
            _ => panic!("{name} is neither XDP nor TC"),
        };
        let result = result.expect("test run");
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    pub fn expectations(&self) -> Vec<(ExpectKey, ExpectValue)> {
        let map: HashMap<&MapData, ExpectKey, ExpectValue> =
            HashMap::try_from(self.ebpf.map(map_names::EXPECTATIONS).expect("map"))
                .expect("hash map");
        map.iter().map(|r| r.expect("entry")).collect()
    }

    /// Every tracked control connection.
    pub fn control_states(&self) -> Vec<(ControlKey, ControlState)> {
        let map: HashMap<&MapData, ControlKey, ControlState> =
            HashMap::try_from(self.ebpf.map(map_names::CONTROL).expect("map")).expect("hash map");
        map.iter().map(|r| r.expect("entry")).collect()
    }

    /// Every flow, admitted ones and the host's own.
    pub fn flows(&self) -> Vec<(FlowKey, FlowValue)> {
        [map_names::FLOWS, map_names::HOST_FLOWS]
            .into_iter()
            .flat_map(|name| {
                let map: HashMap<&MapData, FlowKey, FlowValue> =
                    HashMap::try_from(self.ebpf.map(name).expect("map")).expect("lru map");
                map.iter().map(|r| r.expect("entry")).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Rewrites the policy the programs read (e.g. a closing timeout shorter
    /// than the CLI offers, so a test need not wait 10 s).
    pub fn set_policy(&mut self, change: impl FnOnce(&mut Policy)) {
        let mut map: Array<&mut MapData, Policy> =
            Array::try_from(self.ebpf.map_mut(map_names::POLICY).expect("map")).expect("array");
        let mut policy = map.get(&0, 0).expect("policy");
        change(&mut policy);
        map.set(0, policy, 0).expect("writing the policy");
    }

    /// The audit events waiting in the ring buffer, taken.
    pub fn events(&mut self) -> Vec<ftp_userspace::events::EventLine> {
        let map = self.ebpf.map_mut(map_names::EVENTS).expect("map");
        let mut ring = aya::maps::RingBuf::try_from(map).expect("ring buffer");
        ftp_userspace::events::drain(&mut ring, "test")
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        let map: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map(map_names::COUNTERS).expect("map"))
                .expect("per-cpu array");
        map.get(&(counter as u32), 0).expect("counter").iter().sum()
    }
}

/// A harness whose policy maps `mappings` (`--external-address` values),
/// with `--nat-rewrite` if `rewrite`.
pub fn external_harness(mappings: &[&str], rewrite: bool) -> Harness {
    let mut cfg = AttachConfig::with_defaults("test");
    let values: Vec<String> = mappings.iter().map(|m| m.to_string()).collect();
    cfg.external = ftp_userspace::external::parse(&values).expect("valid mappings");
    cfg.nat_rewrite = rewrite;
    Harness::with(cfg)
}

/// Expectation key in the map's layout.
pub fn expect_key(src: &str, dst: &str, port: u16) -> ExpectKey {
    let (family, src, dst) = match (src.parse().unwrap(), dst.parse().unwrap()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
            a[..4].copy_from_slice(&s.octets());
            b[..4].copy_from_slice(&d.octets());
            (4, a, b)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => (6, s.octets(), d.octets()),
        _ => panic!("mixed families"),
    };
    ExpectKey {
        family,
        _pad: 0,
        dport: port,
        src,
        dst,
    }
}

pub const SERVER: &str = "198.18.0.1";
pub const CLIENT: &str = "198.18.0.2";
pub const INTRUDER: &str = "198.18.0.3";
pub const CPORT: u16 = 50_000;

/// A control connection between CLIENT:CPORT and SERVER:21 (the local server)
/// that keeps both directions' sequence numbers.
pub struct Control<'a> {
    pub h: &'a Harness,
    pub client: &'static str,
    pub cport: u16,
    pub server: &'static str,
    /// Which end is this host: the server (default) or the client.
    pub local_client: bool,
    pub c2s: u32,
    pub s2c: u32,
}

impl<'a> Control<'a> {
    pub fn new(h: &'a Harness) -> Self {
        Self::from(h, CLIENT, CPORT)
    }
    /// A control connection from another client address or port.
    pub fn from(h: &'a Harness, client: &'static str, cport: u16) -> Self {
        Self {
            h,
            client,
            cport,
            server: SERVER,
            local_client: false,
            c2s: 100,
            s2c: 1,
        }
    }
    /// The same connection to another local server address (e.g. IPv6).
    pub fn server(mut self, server: &'static str) -> Self {
        self.server = server;
        self
    }
    /// This host (CLIENT) as the FTP client of a remote `server`: the
    /// handshake, with its SYN and final ACK leaving on egress.
    pub fn to_remote(h: &'a Harness, server: &'static str) -> Self {
        Self::to_remote_from(h, CLIENT, server)
    }
    /// The same from another local address of this host (e.g. IPv6).
    pub fn to_remote_from(h: &'a Harness, client: &'static str, server: &'static str) -> Self {
        let c = Self {
            h,
            client,
            cport: CPORT,
            server,
            local_client: true,
            c2s: 100,
            s2c: 1,
        };
        let local = |flags, seq, ack| {
            Segment::new(client, CPORT, server, 21)
                .seq(seq)
                .ack(ack)
                .flags(flags)
                .frame()
        };
        h.egress(&local(SYN, 99, 0));
        h.ingress(
            &Segment::new(server, 21, client, CPORT)
                .seq(0)
                .ack(100)
                .flags(SYN | ACK)
                .frame(),
        );
        h.egress(&local(ACK, 100, 1));
        c
    }
    /// The next client → server segment carrying `text`; the stream moves on.
    pub fn command_segment(&mut self, text: &[u8]) -> Segment {
        let seg = Segment::new(self.client, self.cport, self.server, 21)
            .seq(self.c2s)
            .ack(self.s2c)
            .payload(text);
        self.c2s += text.len() as u32;
        seg
    }
    /// Client → server; returns the action (XDP for a remote client).
    pub fn command(&mut self, text: &[u8]) -> u32 {
        let frame = self.command_segment(text).frame();
        if self.local_client {
            self.h.egress(&frame)
        } else {
            self.h.ingress(&frame)
        }
    }
    /// The next server → client segment carrying `text`; the stream moves on.
    pub fn reply_segment(&mut self, text: &[u8]) -> Segment {
        let seg = Segment::new(self.server, 21, self.client, self.cport)
            .seq(self.s2c)
            .ack(self.c2s)
            .payload(text);
        self.s2c += text.len() as u32;
        seg
    }
    /// Server → client; returns the action (XDP for a remote server).
    pub fn reply(&mut self, text: &[u8]) -> u32 {
        let frame = self.reply_segment(text).frame();
        if self.local_client {
            self.h.ingress(&frame)
        } else {
            self.h.egress(&frame)
        }
    }
}

/// PASV on `c`, answered with `port` on the server's own address.
pub fn pasv(c: &mut Control, port: u16) {
    pasv_naming(c, [198, 18, 0, 1], port);
}

/// PASV on `c`, answered by a 227 naming `addr` and `port`.
pub fn pasv_naming(c: &mut Control, addr: [u8; 4], port: u16) {
    c.command(b"PASV\r\n");
    let [a, b, d, e] = addr;
    let text = format!(
        "227 Entering Passive Mode ({a},{b},{d},{e},{},{}).\r\n",
        port / 256,
        port % 256
    );
    c.reply(text.as_bytes());
}

/// xorshift64*: a deterministic generator for the randomised tests.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `FTPCT_RANDOM_SEED` if set, else `default` (printed by the
    /// tests so a failure can be replayed).
    pub fn from_env(default: u64) -> Self {
        let seed = std::env::var("FTPCT_RANDOM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A port in `lo..=hi`.
    pub fn port(&mut self, lo: u16, hi: u16) -> u16 {
        lo + self.below(u64::from(hi - lo) + 1) as u16
    }
}
