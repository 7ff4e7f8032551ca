//! A SYN flood of XDP frames, generated the way `xdp-trafficgen`
//! (xdp-tools) does it, so that the receiver runs XDP before any skb exists,
//! as behind a NIC driver.
//!
//! `bench_flood_tx` runs under `BPF_PROG_TEST_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`: the kernel builds each frame in a page-pool
//! page from the template SYN, runs the program (which randomises source
//! address, ports and sequence number and fixes both checksums), and turns
//! its `XDP_TX` into a redirect to the device named in the run's context.
//! That device is the server's peer veth (`p-srv`, a bridge port in the
//! switch namespace): its `ndo_xdp_xmit` puts the `xdp_frame` straight into
//! the ring of the server's `eth0`, whose NAPI poll runs the receiver's XDP
//! program on it. The intruder's own veth would not do: its peer is a bridge
//! port, not the server. veth accepts such frames only while the receiving
//! side has NAPI (an XDP program attached, or GRO on); otherwise it drops
//! them, which the rx counters show.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
use ftp_ebpf_common::program_names;
use ftp_userspace::attach::AttachConfig;
use ftpct_e2e::{LAB_IFACE, Lab, SERVER};

use crate::flood::GEN_CPU;
use crate::frames::{self, SYN, Segment};
use crate::kernel::{Loaded, XDP_TX};
use crate::sys;

/// The veth the generator transmits on: the server's peer.
pub const GEN_IFACE: &str = "p-srv";
/// Frames per `BPF_PROG_TEST_RUN` call: a few tens of milliseconds, so a
/// stop request is seen quickly.
const FRAMES_PER_CALL: u32 = 1 << 15;
/// Frames per batch (the kernel's default; what a NAPI poll handles).
const BATCH: u32 = 64;

/// The generator program, loaded, with what every run needs.
pub struct XdpFlood {
    loaded: Arc<Loaded>,
    /// The switch namespace, where [`GEN_IFACE`] lives.
    netns: PathBuf,
    ifindex: u32,
    frame: Vec<u8>,
}

impl XdpFlood {
    /// Loads the generator for the server of `lab`.
    pub fn new(lab: &Lab) -> Result<Self> {
        let switch = lab.switch();
        let out = switch.run_ok(&["ip", "-j", "link", "show", "dev", GEN_IFACE])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let ifindex = v[0]["ifindex"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .with_context(|| format!("no ifindex for {GEN_IFACE}"))?;
        let dst = parse_mac(&sys::mac_address(lab.server(), LAB_IFACE)?)?;
        let src = parse_mac(&sys::mac_address(switch, GEN_IFACE)?)?;
        let frame = frames::with_checksums(frames::with_macs(
            Segment::new(
                std::net::Ipv4Addr::new(198, 19, 0, 1),
                1024,
                SERVER.v4,
                1024,
            )
            .flags(SYN)
            .frame(),
            dst,
            src,
        ));
        let mut loaded = Loaded::load(&AttachConfig::with_defaults("lo"))?;
        check_program(&mut loaded, &frame)?;
        Ok(Self {
            loaded: Arc::new(loaded),
            netns: switch.path().to_path_buf(),
            ifindex,
            frame,
        })
    }

    /// Starts flooding from a thread pinned to [`GEN_CPU`], for at most
    /// `limit`.
    pub fn start(&self, limit: Duration) -> Result<XdpGenerator> {
        let stop = Arc::new(AtomicBool::new(false));
        let run = Run {
            loaded: Arc::clone(&self.loaded),
            netns: self.netns.clone(),
            ifindex: self.ifindex,
            frame: self.frame.clone(),
            deadline: Instant::now() + limit,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("xdp-flood".into())
            .spawn(move || run.flood())?;
        Ok(XdpGenerator {
            stop,
            thread: Some(thread),
        })
    }
}

/// What the generator thread owns.
struct Run {
    loaded: Arc<Loaded>,
    netns: PathBuf,
    ifindex: u32,
    frame: Vec<u8>,
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

impl Run {
    /// Runs the generator until the deadline or a stop request; returns the
    /// frames it generated.
    fn flood(self) -> Result<u64> {
        // This thread only ever floods, so it may stay in the namespace.
        sys::enter_netns(&self.netns)?;
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        sys::pin_to_cpu(u32::try_from(tid)?, GEN_CPU)?;
        let prog: &Xdp = self
            .loaded
            .ebpf
            .program(program_names::BENCH_FLOOD_TX)
            .context("generator program missing")?
            .try_into()?;
        let len = u32::try_from(self.frame.len())?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let ctx: Vec<u8> = [0, len, 0, self.ifindex, 0, 0]
            .iter()
            .flat_map(|w: &u32| w.to_ne_bytes())
            .collect();
        let mut sent = 0u64;
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline {
            prog.test_run(TestRunOptions {
                data_in: Some(&self.frame),
                ctx_in: Some(&ctx),
                repeat: FRAMES_PER_CALL,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..Default::default()
            })
            .context("BPF_PROG_TEST_RUN (live frames) of the generator")?;
            sent += u64::from(FRAMES_PER_CALL);
        }
        Ok(sent)
    }
}

/// A running XDP-frames generator; stopped and joined on drop.
pub struct XdpGenerator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<u64>>>,
}

impl XdpGenerator {
    /// Waits for the bounded run to end; returns the frames generated.
    pub fn finish(mut self) -> Result<u64> {
        self.join()
    }

    /// Stops it now; returns the frames generated.
    pub fn stop(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    fn join(&mut self) -> Result<u64> {
        let thread = self.thread.take().context("generator already joined")?;
        thread
            .join()
            .map_err(|_| anyhow!("the generator thread panicked"))?
    }
}

impl Drop for XdpGenerator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// Runs the generator program a few times on `frame` (an ordinary test run,
/// which returns the frame): each output must carry valid checksums, a
/// source in 198.19.0.0/16 and a destination port in 1024–65535, or the
/// kernel would discard the flood before the filters compared here.
fn check_program(loaded: &mut Loaded, frame: &[u8]) -> Result<()> {
    for _ in 0..16 {
        let (action, _) = loaded.run_xdp(program_names::BENCH_FLOOD_TX, frame, 1)?;
        ensure!(
            action == XDP_TX,
            "bench_flood_tx returned {action}, expected XDP_TX"
        );
        let out = loaded.last_out(frame.len());
        ensure!(
            frames::checksums_valid(out),
            "bench_flood_tx wrote bad checksums: {out:02x?}"
        );
        let dport = u16::from_be_bytes([out[36], out[37]]);
        ensure!(
            out[26..28] == [198, 19] && dport >= 1024,
            "bench_flood_tx wrote an unexpected frame: {out:02x?}"
        );
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC address {text}"))?;
    ensure!(bytes.len() == 6, "bad MAC address {text}");
    let mut mac = [0; 6];
    mac.copy_from_slice(&bytes);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").unwrap(),
            [2, 0, 10, 255, 0, 1]
        );
        assert!(parse_mac("02:00").is_err());
    }
}
