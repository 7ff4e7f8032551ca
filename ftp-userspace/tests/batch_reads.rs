//! Reading the tables in batches (issue #13, item 4): `BPF_MAP_LOOKUP_BATCH`
//! returns exactly the entries present, in a table larger than one batch
//! and in an empty one, and the counts `status` shows equal the lengths of
//! the `flows` and `expectations` listings, expired entries left out of
//! both. Runs on the loaded (not attached) programs' maps, pinned under a
//! pin root of its own that it removes.

mod common;

use std::collections::HashMap as StdHashMap;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData};
use common::Harness;
use ftp_ebpf_common::{
    control::{ControlKey, ControlState},
    family,
    flow::{ExpectKey, ExpectValue, FlowKey, FlowValue, expect_kind, flow_origin, flow_state},
    map_names,
};
use ftp_userspace::{
    attach::{AttachConfig, monotonic_ns},
    batch, tables,
};

/// Entries of the large table: several batches' worth.
const MANY: u32 = 20_000;

/// Flow `i` from 198.18.x.y to 198.19.0.1.
fn flow_key(i: u32) -> FlowKey {
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&(u32::from_be_bytes([198, 18, 0, 0]) + i).to_be_bytes());
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&[198, 19, 0, 1]);
    FlowKey {
        family: family::V4,
        sport: 1024 + (i % 60_000) as u16,
        dport: 40_000,
        src,
        dst,
        ..Default::default()
    }
}

/// Expectation `i` for 198.18.x.y to 198.19.0.1, port 40000 + i % 1000.
fn expect_key(i: u32) -> ExpectKey {
    let k = flow_key(i);
    ExpectKey {
        family: family::V4,
        dport: 40_000 + (i % 1_000) as u16,
        src: k.src,
        dst: k.dst,
        ..Default::default()
    }
}

/// The loaded maps pinned in a directory of their own, unpinned on drop.
struct Pinned(PathBuf);

impl Pinned {
    fn new(h: &Harness) -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/ftpct-test-batch-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("creating the pin directory (bpffs mounted?)");
        let pinned = Self(dir);
        for name in [
            map_names::EXPECTATIONS,
            map_names::FLOWS,
            map_names::HOST_FLOWS,
            map_names::CONTROL,
            map_names::POLICY,
        ] {
            let map = h.ebpf.map(name).expect("map in the object");
            data(map).pin(pinned.0.join(name)).expect("pinning");
        }
        pinned
    }

    fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data(map: &aya::maps::Map) -> &MapData {
    match map {
        aya::maps::Map::HashMap(d) | aya::maps::Map::LruHashMap(d) | aya::maps::Map::Array(d) => d,
        _ => panic!("unexpected map kind"),
    }
}

fn map<'a>(h: &'a mut Harness, name: &str) -> &'a mut aya::maps::Map {
    h.ebpf.map_mut(name).expect("map in the object")
}

#[test]
fn batches_return_exactly_the_entries_present() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_flows = 2 * MANY;
    cfg.max_expectations = 8;
    let mut h = Harness::with(cfg);

    // Empty tables: nothing, and no error at the end.
    for name in [map_names::FLOWS, map_names::HOST_FLOWS] {
        let got: Vec<(FlowKey, FlowValue)> =
            batch::entries(h.ebpf.map(name).expect("map")).expect("batch read");
        assert!(
            got.is_empty(),
            "{name}: {} entries in an empty table",
            got.len()
        );
    }

    // More entries than one batch holds, each with its own value.
    let now = monotonic_ns();
    let mut want = StdHashMap::new();
    {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(map(&mut h, map_names::FLOWS)).expect("flow table");
        for i in 0..MANY {
            let v = FlowValue {
                last_seen_ns: now - u64::from(i),
                origin: flow_origin::ADMITTED,
                seq: i,
                ..Default::default()
            };
            flows.insert(flow_key(i), v, 0).expect("insert");
            want.insert(flow_key(i), v);
        }
    }
    let got: Vec<(FlowKey, FlowValue)> =
        batch::entries(h.ebpf.map(map_names::FLOWS).expect("map")).expect("batch read");
    assert_eq!(got.len(), want.len(), "every entry once");
    for (k, v) in &got {
        let expected = want.get(k).expect("an entry that was inserted");
        assert_eq!(
            (v.last_seen_ns, v.seq),
            (expected.last_seen_ns, expected.seq),
            "its value"
        );
    }

    // A table of exactly one entry, and one of a few: the batch ends with
    // the table (ENOENT) whatever it holds.
    {
        let mut host: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(map(&mut h, map_names::HOST_FLOWS)).expect("host flow table");
        host.insert(flow_key(7), FlowValue::default(), 0)
            .expect("insert");
    }
    let got: Vec<(FlowKey, FlowValue)> =
        batch::entries(h.ebpf.map(map_names::HOST_FLOWS).expect("map")).expect("batch read");
    assert_eq!(got.len(), 1);
    assert!(got[0].0 == flow_key(7));

    // An array, read by key in the same batches: every port's class, in
    // order, as aya reads them one by one.
    let classes: Vec<u8> =
        batch::array(h.ebpf.map(map_names::PORTS).expect("map")).expect("batch read");
    let ports: Array<&MapData, u8> =
        Array::try_from(h.ebpf.map(map_names::PORTS).expect("map")).expect("array");
    assert_eq!(classes.len(), ports.len() as usize);
    for port in [0u32, 20, 21, 1023, 1024, 40_000, 65_535] {
        assert_eq!(classes[port as usize], ports.get(&port, 0).expect("class"));
    }

    // A map of another kind is refused, not misread.
    let refused: anyhow::Result<Vec<(u32, u32)>> =
        batch::entries(h.ebpf.map(map_names::POLICY).expect("map"));
    assert!(refused.is_err(), "an array read as a hash map");
}

#[test]
fn status_counts_equal_the_listings() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_flows = 2 * MANY;
    cfg.max_expectations = 2 * MANY;
    let mut h = Harness::with(cfg);
    h.set_policy(|p| {
        p.flow_timeout_ns = 60_000_000_000;
        p.closing_timeout_ns = 1_000_000_000;
    });
    let pinned = Pinned::new(&h);
    let dir = pinned.dir();

    let zero = tables::fill(dir, &tables::policy(dir).expect("policy")).expect("fill");
    assert_eq!(zero, tables::Fill::default(), "empty tables");
    assert!(tables::flows(dir, "lo").expect("flows").is_empty());
    assert!(
        tables::expectations(dir, "lo")
            .expect("expectations")
            .is_empty()
    );

    let now = monotonic_ns();
    let (mut live_flows, mut admitted, mut live_expectations) = (0, 0, 0);
    {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(map(&mut h, map_names::FLOWS)).expect("flow table");
        for i in 0..MANY {
            // Every fifth is closing and idle past the closing timeout.
            let expired = i % 5 == 0;
            let v = FlowValue {
                last_seen_ns: if expired { now - 5_000_000_000 } else { now },
                state: if expired {
                    flow_state::CLOSING
                } else {
                    flow_state::OPEN
                },
                origin: flow_origin::ADMITTED,
                ..Default::default()
            };
            flows.insert(flow_key(i), v, 0).expect("insert");
            if !expired {
                live_flows += 1;
                admitted += 1;
            }
        }
    }
    {
        let mut host: HashMap<&mut MapData, FlowKey, FlowValue> =
            HashMap::try_from(map(&mut h, map_names::HOST_FLOWS)).expect("host flow table");
        for i in 0..3 {
            let v = FlowValue {
                last_seen_ns: now,
                origin: flow_origin::OUTBOUND,
                ..Default::default()
            };
            host.insert(flow_key(MANY + i), v, 0).expect("insert");
            live_flows += 1;
        }
    }
    {
        let mut exp: HashMap<&mut MapData, ExpectKey, ExpectValue> =
            HashMap::try_from(map(&mut h, map_names::EXPECTATIONS)).expect("expectation table");
        for i in 0..MANY / 2 {
            // Every tenth has expired.
            let expired = i % 10 == 0;
            let v = ExpectValue {
                expires_ns: if expired {
                    now - 1
                } else {
                    now + 3_600_000_000_000
                },
                kind: expect_kind::PASV,
                ..Default::default()
            };
            exp.insert(expect_key(i), v, 0).expect("insert");
            live_expectations += usize::from(!expired);
        }
    }
    let fill = tables::fill(dir, &tables::policy(dir).expect("policy")).expect("fill");
    let flows = tables::flows(dir, "lo").expect("flows");
    let expectations = tables::expectations(dir, "lo").expect("expectations");
    assert_eq!(fill.flows, live_flows);
    assert_eq!(fill.admitted_flows, admitted);
    assert_eq!(fill.expectations, live_expectations);
    assert_eq!(fill.flows, flows.len(), "status and flows agree");
    assert_eq!(
        fill.admitted_flows,
        flows.iter().filter(|f| f.origin == "admitted").count()
    );
    assert_eq!(
        fill.expectations,
        expectations.len(),
        "status and expectations agree"
    );
    assert_eq!(
        fill.control_connections,
        tables::control_count(dir).expect("count")
    );
    let controls: Vec<(ControlKey, ControlState)> =
        batch::entries(h.ebpf.map(map_names::CONTROL).expect("map")).expect("batch read");
    assert_eq!(fill.control_connections, controls.len());
}
