//! The per-client cap counts live expectations only: expired ones stop
//! counting once their lifetime is over, so one host behind a shared address
//! cannot hold the cap full with a single live entry.

mod common;

use std::{thread::sleep, time::Duration};

use common::{CLIENT, CPORT, Control, Harness, SERVER, SYN, Segment, XDP_PASS, pasv};
use ftp_ebpf_common::counters::Counter;
use ftp_userspace::attach::AttachConfig;

#[test]
fn expired_expectations_stop_counting_against_their_client() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_expect_per_client = 3;
    cfg.expect_timeout_secs = 1;
    let h = Harness::with(cfg);
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    let mut other = Control::from(&h, CLIENT, CPORT + 1);
    other.reply(b"220 ready\r\n");
    // Three at t=0 fill the cap.
    for port in 40_000..40_003 {
        pasv(&mut c, port);
    }
    sleep(Duration::from_millis(700));
    // One is used, one more created at t=0.7: three counted, one of them live
    // beyond t=1.
    let syn = Segment::new(CLIENT, 45_000, SERVER, 40_000)
        .flags(SYN)
        .frame();
    assert_eq!(h.ingress(&syn), XDP_PASS);
    pasv(&mut other, 40_010);
    assert_eq!(h.counter(Counter::RefusedClientLimit), 0);
    sleep(Duration::from_millis(700));
    // t=1.4: only the one from t=0.7 is live; two more fit.
    pasv(&mut c, 40_020);
    pasv(&mut other, 40_021);
    assert_eq!(
        h.counter(Counter::RefusedClientLimit),
        0,
        "expired ones counted"
    );
    pasv(&mut c, 40_022);
    assert_eq!(h.counter(Counter::RefusedClientLimit), 1, "cap still holds");
}
