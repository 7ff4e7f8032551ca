//! Offsets of the kernel fields the FTPS probes read (`TlsConfig`), taken
//! from the running kernel's BTF. They differ across kernel versions and
//! configurations and the probes read them by plain offset, so user space
//! measures them once at attachment. Only a few struct members are needed,
//! so a small reader of the BTF format (Documentation/bpf/btf.rst) does it
//! rather than a dependency. The input is untrusted: every read is
//! bounds-checked and malformed BTF gives an error, never a panic.

use anyhow::{Result, anyhow, bail, ensure};
use ftp_ebpf_common::tls::TlsConfig;

/// Where the running kernel exposes its own BTF.
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Fills every offset field of `TlsConfig` from the running kernel's BTF
/// (/sys/kernel/btf/vmlinux); netns_inum, ready and padding are left 0.
pub fn tls_offsets() -> Result<TlsConfig> {
    let btf = std::fs::read(VMLINUX).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "this kernel has no BTF ({VMLINUX}): FTPS inspection needs CONFIG_DEBUG_INFO_BTF"
            )
        } else {
            anyhow!("reading the kernel's BTF ({VMLINUX}): {e}")
        }
    })?;
    tls_offsets_from(&btf)
}

/// The same from BTF bytes (for tests and for kernels whose BTF file is elsewhere).
pub fn tls_offsets_from(btf: &[u8]) -> Result<TlsConfig> {
    let btf = Btf::parse(btf)?;
    let sk = |path: &[&str]| btf.offset("sock_common", path);
    Ok(TlsConfig {
        skc_daddr: sk(&["skc_daddr"])?,
        skc_rcv_saddr: sk(&["skc_rcv_saddr"])?,
        skc_dport: sk(&["skc_dport"])?,
        skc_num: sk(&["skc_num"])?,
        skc_family: sk(&["skc_family"])?,
        // `possible_net_t` wraps the pointer (it is empty without netns).
        skc_net: sk(&["skc_net", "net"])?,
        skc_v6_daddr: sk(&["skc_v6_daddr"])?,
        skc_v6_rcv_saddr: sk(&["skc_v6_rcv_saddr"])?,
        net_inum: btf.offset("net", &["ns", "inum"])?,
        ..TlsConfig::default()
    })
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// Size of `struct btf_header` (version 1) and of `struct btf_type`.
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;
/// Size of `struct btf_member`.
const MEMBER_LEN: usize = 12;

/// A parsed view of a BTF blob: its type and string sections, and where
/// each type's record starts (types are variable-length, so ids need an index).
struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// `starts[id - 1]`: offset in `types` of type `id` (id 0 is void).
    starts: Vec<usize>,
}

/// The fixed part of a `struct btf_type`.
#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    vlen: usize,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
    /// Offset in the type section of the kind-specific data.
    data: usize,
}

/// A struct member found by name: where it is and what it is.
struct Member {
    bits: u64,
    bitfield_size: u32,
    ty: u32,
}

/// The little-endian `u32` at `at`, or an error past the end.
fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    at.checked_add(4)
        .and_then(|end| b.get(at..end))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| anyhow!("kernel BTF: truncated (read past byte {at} of a section)"))
}

impl<'a> Btf<'a> {
    fn parse(b: &'a [u8]) -> Result<Self> {
        ensure!(
            b.len() >= HEADER_LEN,
            "kernel BTF: {} bytes, shorter than its header",
            b.len()
        );
        match (b[0], b[1]) {
            (0x9f, 0xeb) => {}
            (0xeb, 0x9f) => bail!("kernel BTF: big-endian BTF is not supported"),
            _ => bail!("kernel BTF: bad magic {:02x}{:02x}, not BTF", b[1], b[0]),
        }
        ensure!(b[2] == 1, "kernel BTF: unsupported version {}", b[2]);
        let hdr_len = u32_at(b, 4)? as usize;
        ensure!(
            (HEADER_LEN..=b.len()).contains(&hdr_len),
            "kernel BTF: bad header length {hdr_len}"
        );
        // Section offsets count from the end of the header.
        let section = |at: usize, what: &str| -> Result<&'a [u8]> {
            let off = u32_at(b, at)? as usize;
            let len = u32_at(b, at + 4)? as usize;
            hdr_len
                .checked_add(off)
                .and_then(|start| b.get(start..start.checked_add(len)?))
                .ok_or_else(|| anyhow!("kernel BTF: {what} section runs past the end"))
        };
        let types = section(8, "type")?;
        let strings = section(16, "string")?;

        let mut starts = Vec::new();
        let mut at = 0;
        while at < types.len() {
            let info = u32_at(types, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => 12 * vlen,
                6 | 13 => 8 * vlen,
                2 | 7..=12 | 16 | 18 => 0,
                kind => bail!(
                    "kernel BTF: type {} has unknown kind {kind}",
                    starts.len() + 1
                ),
            };
            starts.push(at);
            at = at.saturating_add(TYPE_LEN + extra);
        }
        ensure!(
            at == types.len(),
            "kernel BTF: the last type runs past the type section"
        );
        Ok(Self {
            types,
            strings,
            starts,
        })
    }

    /// The type with id `id`.
    fn ty(&self, id: u32) -> Result<Type> {
        let start = id
            .checked_sub(1)
            .and_then(|i| self.starts.get(i as usize))
            .copied()
            .ok_or_else(|| anyhow!("kernel BTF: type id {id} out of range"))?;
        let info = u32_at(self.types, start + 4)?;
        Ok(Type {
            name_off: u32_at(self.types, start)?,
            kind: (info >> 24) & 0x1f,
            kind_flag: info >> 31 != 0,
            vlen: (info & 0xffff) as usize,
            size_or_type: u32_at(self.types, start + 8)?,
            data: start + TYPE_LEN,
        })
    }

    /// The NUL-terminated string at `off` in the string section.
    fn name(&self, off: u32) -> Result<&'a [u8]> {
        self.strings
            .get(off as usize..)
            .and_then(|s| s.split(|&c| c == 0).next().filter(|n| n.len() < s.len()))
            .ok_or_else(|| anyhow!("kernel BTF: bad string offset {off}"))
    }

    /// Type `id` with typedefs and qualifiers (volatile, const, restrict,
    /// type tags) stripped, as a member's declared type may carry them.
    fn resolve(&self, mut id: u32) -> Result<Type> {
        for _ in 0..64 {
            let t = self.ty(id)?;
            match t.kind {
                8..=11 | 18 => id = t.size_or_type,
                _ => return Ok(t),
            }
        }
        bail!("kernel BTF: typedef chain too long (a loop?) at type {id}")
    }

    /// The first struct called `name` with members: a bare declaration
    /// would have none.
    fn find_struct(&self, name: &str) -> Result<Type> {
        for id in 1..=self.starts.len() as u32 {
            let t = self.ty(id)?;
            if t.kind == KIND_STRUCT && t.vlen > 0 && self.name(t.name_off)? == name.as_bytes() {
                return Ok(t);
            }
        }
        bail!("kernel BTF: no struct {name}")
    }

    /// Member `name` of struct or union `t`, looked for also inside its
    /// anonymous struct and union members (where `sock_common` keeps most of
    /// its addresses and ports), with its bit offset from the start of `t`.
    fn find_member(&self, t: &Type, name: &str, depth: u32) -> Result<Option<Member>> {
        ensure!(depth < 32, "kernel BTF: anonymous members nested too deep");
        for i in 0..t.vlen {
            let at = t.data + i * MEMBER_LEN;
            let name_off = u32_at(self.types, at)?;
            let ty = u32_at(self.types, at + 4)?;
            let raw = u32_at(self.types, at + 8)?;
            // With kind_flag, the offset word also holds the bitfield size.
            let (bits, bitfield_size) = if t.kind_flag {
                (raw & 0xff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            let member_name = self.name(name_off)?;
            if member_name == name.as_bytes() {
                return Ok(Some(Member {
                    bits: bits.into(),
                    bitfield_size,
                    ty,
                }));
            }
            if !member_name.is_empty() {
                continue;
            }
            let inner = self.resolve(ty)?;
            if !matches!(inner.kind, KIND_STRUCT | KIND_UNION) {
                continue;
            }
            if let Some(mut m) = self.find_member(&inner, name, depth + 1)? {
                m.bits += u64::from(bits);
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Byte offset of `path` (a member, then members of its struct type...)
    /// within struct `struct_name`.
    fn offset(&self, struct_name: &str, path: &[&str]) -> Result<u16> {
        let mut t = self.find_struct(struct_name)?;
        let mut owner = format!("struct {struct_name}");
        let mut bits = 0u64;
        for (i, member) in path.iter().enumerate() {
            let m = self
                .find_member(&t, member, 0)?
                .ok_or_else(|| anyhow!("kernel BTF: {owner} has no member {member}"))?;
            owner = format!("{struct_name}.{}", path[..=i].join("."));
            ensure!(m.bitfield_size == 0, "kernel BTF: {owner} is a bitfield");
            bits += m.bits;
            if i + 1 < path.len() {
                t = self.resolve(m.ty)?;
                ensure!(
                    matches!(t.kind, KIND_STRUCT | KIND_UNION),
                    "kernel BTF: {owner} is not a struct"
                );
            }
        }
        ensure!(
            bits.is_multiple_of(8),
            "kernel BTF: {owner} is not byte-aligned (bit offset {bits})"
        );
        u16::try_from(bits / 8)
            .map_err(|_| anyhow!("kernel BTF: {owner} at byte {} is beyond 64 KiB", bits / 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small BTF blob shaped like the kernel's: an empty `sock_common`
    /// declaration first, anonymous unions and structs (one behind a
    /// `const`), a kind_flag struct with a bitfield, `possible_net_t` as a
    /// typedef of an anonymous struct. `rename` replaces one name.
    fn synthetic(rename: Option<(&str, &str)>) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut s = |name: &str| -> u32 {
            let name = match rename {
                Some((from, to)) if from == name => to,
                _ => name,
            };
            let off = strings.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            off
        };
        let mut t = Vec::new();
        let word = |t: &mut Vec<u8>, w: u32| t.extend_from_slice(&w.to_le_bytes());
        let ty = |t: &mut Vec<u8>, name: u32, kind: u32, kflag: bool, vlen: u32, st: u32| {
            word(t, name);
            word(t, (u32::from(kflag) << 31) | (kind << 24) | vlen);
            word(t, st);
        };
        let member = |t: &mut Vec<u8>, name: u32, ty: u32, off: u32| {
            for w in [name, ty, off] {
                t.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: empty struct sock_common (skipped: no members).
        ty(&mut t, s("sock_common"), 4, false, 0, 0);
        // 2: unsigned int, 3: unsigned short.
        ty(&mut t, s("unsigned int"), 1, false, 0, 4);
        t.extend_from_slice(&32u32.to_le_bytes());
        ty(&mut t, s("unsigned short"), 1, false, 0, 2);
        t.extend_from_slice(&16u32.to_le_bytes());
        // 4: struct ns_common { ops; inum @4 }.
        ty(&mut t, s("ns_common"), 4, false, 2, 8);
        member(&mut t, s("ops"), 2, 0);
        member(&mut t, s("inum"), 2, 32);
        // 5: struct net { x; ns @8 }, 6: struct net *.
        ty(&mut t, s("net"), 4, false, 2, 16);
        member(&mut t, s("x"), 2, 0);
        member(&mut t, s("ns"), 4, 64);
        ty(&mut t, 0, 2, false, 0, 5);
        // 7: struct { net }, 8: typedef possible_net_t.
        ty(&mut t, 0, 4, false, 1, 8);
        member(&mut t, s("net"), 6, 0);
        ty(&mut t, s("possible_net_t"), 8, false, 0, 7);
        // 9: struct { skc_daddr; skc_rcv_saddr }, 10: union of it.
        ty(&mut t, 0, 4, false, 2, 8);
        member(&mut t, s("skc_daddr"), 2, 0);
        member(&mut t, s("skc_rcv_saddr"), 2, 32);
        ty(&mut t, 0, 5, false, 2, 8);
        member(&mut t, s("skc_addrpair"), 2, 0);
        member(&mut t, 0, 9, 0);
        // 11: struct { skc_dport; skc_num }, 12: const of it.
        ty(&mut t, 0, 4, false, 2, 4);
        member(&mut t, s("skc_dport"), 3, 0);
        member(&mut t, s("skc_num"), 3, 16);
        ty(&mut t, 0, 10, false, 0, 11);
        // 13: unsigned int[4].
        ty(&mut t, 0, 3, false, 0, 0);
        for w in [2, 2, 4] {
            t.extend_from_slice(&u32::to_le_bytes(w));
        }
        // 14: struct sock_common, with kind_flag.
        ty(&mut t, s("sock_common"), 4, true, 7, 64);
        member(&mut t, 0, 10, 0);
        member(&mut t, 0, 12, 64);
        member(&mut t, s("skc_family"), 3, 96);
        member(&mut t, s("skc_reuse"), 3, (4 << 24) | 112);
        member(&mut t, s("skc_net"), 8, 128);
        member(&mut t, s("skc_v6_daddr"), 13, 192);
        member(&mut t, s("skc_v6_rcv_saddr"), 13, 320);

        let mut b = Vec::new();
        for w in [0xeb9f_u16, 0x0001] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let tl = t.len() as u32;
        for w in [24, 0, tl, tl, strings.len() as u32] {
            b.extend_from_slice(&u32::to_le_bytes(w));
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn running_kernel() {
        let c = tls_offsets().expect("kernel BTF");
        // Where `ns` lies in `struct net` depends on the kernel's version
        // and configuration (152 + 24 on 6.18); it is inside the struct and
        // aligned for the u32 it names.
        assert!(
            c.net_inum > 0 && c.net_inum < 4096 && c.net_inum.is_multiple_of(4),
            "{c:?}"
        );
        let expected = TlsConfig {
            skc_daddr: 0,
            skc_rcv_saddr: 4,
            skc_dport: 12,
            skc_num: 14,
            skc_family: 16,
            skc_net: 48,
            skc_v6_daddr: 56,
            skc_v6_rcv_saddr: 72,
            net_inum: c.net_inum,
            ..TlsConfig::default()
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn synthetic_btf() {
        let c = tls_offsets_from(&synthetic(None)).expect("synthetic BTF");
        let expected = TlsConfig {
            skc_daddr: 0,
            skc_rcv_saddr: 4,
            skc_dport: 8,
            skc_num: 10,
            skc_family: 12,
            skc_net: 16,
            skc_v6_daddr: 24,
            skc_v6_rcv_saddr: 40,
            net_inum: 12,
            ..TlsConfig::default()
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn clear_errors() {
        let err =
            |r: Option<(&str, &str)>| format!("{}", tls_offsets_from(&synthetic(r)).unwrap_err());
        assert_eq!(
            err(Some(("skc_v6_daddr", "skc_v6_x"))),
            "kernel BTF: struct sock_common has no member skc_v6_daddr"
        );
        assert_eq!(
            err(Some(("inum", "inom"))),
            "kernel BTF: net.ns has no member inum"
        );
        assert_eq!(
            err(Some(("net", "nett"))),
            "kernel BTF: sock_common.skc_net has no member net"
        );
        assert_eq!(
            err(Some(("sock_common", "sock"))),
            "kernel BTF: no struct sock_common"
        );
        let mut big = synthetic(None);
        big[0] = 0xeb;
        big[1] = 0x9f;
        assert!(err_of(&big).contains("big-endian"));
    }

    fn err_of(b: &[u8]) -> String {
        format!("{}", tls_offsets_from(b).unwrap_err())
    }

    #[test]
    fn malformed_input_is_an_error() {
        let good = synthetic(None);
        for len in 0..good.len() {
            assert!(tls_offsets_from(&good[..len]).is_err(), "prefix {len}");
        }
        // Flipped bytes may still parse, but must never panic.
        for i in 0..good.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= x;
                let _ = tls_offsets_from(&bad);
            }
        }
        if let Ok(real) = std::fs::read(VMLINUX) {
            for len in 0..64.min(real.len()) {
                assert!(tls_offsets_from(&real[..len]).is_err(), "prefix {len}");
            }
            for i in [0, 2, 4, 8, 12, 16, 20, 24, 28, 33, 4000, real.len() - 1] {
                let mut bad = real.clone();
                if let Some(byte) = bad.get_mut(i) {
                    *byte ^= 0xff;
                }
                let _ = tls_offsets_from(&bad);
            }
        }
    }
}
