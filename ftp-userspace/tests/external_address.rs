//! Behind a 1:1 NAT the server announces the address clients reach it at
//! (`--external-address`), not its own: such a `227` opens the local port
//! the translated SYN arrives at, and so does a local client's `PORT` naming
//! its external address. Only the host's own end is mapped: a mapping for
//! another local address does not apply, and a remote client naming the
//! host's external address is still a bounce.

mod common;

use common::{
    CLIENT, Control, Harness, INTRUDER, SERVER, SYN, Segment, XDP_DROP, XDP_PASS, expect_key,
};
use ftp_ebpf_common::counters::Counter;

/// The public address of the NAT in front of the host.
const EXTERNAL: &str = "198.19.0.10";
/// A remote FTP server the host connects to as a client.
const REMOTE: &str = "198.18.0.9";

/// A harness whose policy maps `mappings` (`--external-address` values).
fn harness(mappings: &[&str]) -> Harness {
    common::external_harness(mappings, false)
}

/// PASV on `c` answered by a 227 naming the external address and `port`.
fn pasv_external(c: &mut Control, port: u16) {
    common::pasv_naming(c, [198, 19, 0, 10], port);
}

fn syn(h: &Harness, src: &str, port: u16) -> u32 {
    h.ingress(&Segment::new(src, 45_000, SERVER, port).flags(SYN).frame())
}

#[test]
fn a_227_naming_the_external_address_opens_the_local_port() {
    for mapping in [EXTERNAL.to_string(), format!("{SERVER}={EXTERNAL}")] {
        let h = harness(&[&mapping]);
        let mut c = Control::new(&h);
        c.reply(b"220 ready\r\n");
        pasv_external(&mut c, 40_000);
        let entries = h.expectations();
        assert_eq!(entries.len(), 1, "{mapping}: {entries:?}");
        // Keyed on the local address: the translated SYN arrives there.
        assert_eq!(
            entries[0].0,
            expect_key(CLIENT, SERVER, 40_000),
            "{mapping}"
        );
        assert_eq!(h.counter(Counter::AnnouncedViaExternal), 1, "{mapping}");
        assert_eq!(h.counter(Counter::RefusedAddressMismatch), 0, "{mapping}");
        assert_eq!(syn(&h, INTRUDER, 40_000), XDP_DROP, "{mapping}: intruder");
        assert_eq!(syn(&h, CLIENT, 40_000), XDP_PASS, "{mapping}: client");
    }
}

#[test]
fn without_a_mapping_for_its_local_address_the_external_address_is_refused() {
    for mappings in [&[][..], &["198.18.0.77=198.19.0.10"][..]] {
        let h = harness(mappings);
        let mut c = Control::new(&h);
        c.reply(b"220 ready\r\n");
        pasv_external(&mut c, 40_000);
        assert!(h.expectations().is_empty(), "{mappings:?}");
        assert_eq!(
            h.counter(Counter::RefusedAddressMismatch),
            1,
            "{mappings:?}"
        );
        assert_eq!(h.counter(Counter::AnnouncedViaExternal), 0, "{mappings:?}");
        assert_eq!(syn(&h, CLIENT, 40_000), XDP_DROP, "{mappings:?}");
    }
}

#[test]
fn the_local_address_itself_still_works_with_a_mapping() {
    let h = harness(&[EXTERNAL]);
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    common::pasv(&mut c, 40_001);
    assert_eq!(h.expectations().len(), 1);
    assert_eq!(h.counter(Counter::AnnouncedViaExternal), 0);
}

#[test]
fn a_local_clients_port_naming_its_external_address_opens_its_port() {
    let h = harness(&[EXTERNAL]);
    let mut c = Control::to_remote(&h, REMOTE);
    c.reply(b"220 hello\r\n");
    c.command(b"PORT 198,19,0,10,156,122\r\n");
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(REMOTE, CLIENT, 40_058));
    assert_eq!(h.counter(Counter::AnnouncedViaExternal), 1);
    assert_eq!(h.counter(Counter::RefusedBounce), 0);
}

#[test]
fn a_remote_client_naming_the_hosts_external_address_is_a_bounce() {
    let h = harness(&[EXTERNAL]);
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    c.command(b"PORT 198,19,0,10,156,122\r\n");
    c.reply(b"200 ok\r\n");
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::RefusedBounce), 1);
    assert_eq!(h.counter(Counter::AnnouncedViaExternal), 0);
}
