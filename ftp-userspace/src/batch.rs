//! Reading a whole hash or LRU hash map with `BPF_MAP_LOOKUP_BATCH`: a few
//! thousand entries per system call, where aya's iterator makes two calls
//! per entry (`GET_NEXT_KEY`, then a lookup). With a million flows that is
//! the difference between a few hundred calls and two million.
//!
//! Kernel semantics (`__htab_map_lookup_and_delete_batch`, since 5.6): the
//! cursor is a bucket index the kernel writes to `out_batch` and takes back
//! in `in_batch` (none for the first call). A call copies whole buckets up
//! to `count` entries and sets `count` to what it copied; it fails with
//! `ENOENT` once the last bucket is done (`count` still says what that call
//! copied) and with `ENOSPC` when the first bucket it reaches holds more
//! than `count` entries (then nothing was copied: retry with more room).
//! Entries added or removed while reading may or may not be seen, as with
//! any walk of a live table. Arrays are read the same way (the kernel's
//! generic batch walks them key by key; `status` reads the 65,536 port
//! classes so, in 8 calls instead of 65,536).

use std::{
    mem::MaybeUninit,
    os::fd::{AsFd as _, AsRawFd as _},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Pod,
    maps::{Array, HashMap, Map, MapData},
};
use aya_obj::generated::{bpf_attr__bindgen_ty_3 as BatchAttr, bpf_cmd};

/// Entries asked for per call (fewer if the map holds fewer).
pub const BATCH: u32 = 8_192;

/// Calls `each` with every entry of the hash or LRU hash `map`, a chunk of
/// keys and their values at a time.
pub fn for_each_chunk<K: Pod, V: Pod>(map: &Map, mut each: impl FnMut(&[K], &[V])) -> Result<()> {
    let data = match map {
        Map::HashMap(data) | Map::LruHashMap(data) => data,
        _ => bail!("not a hash or LRU hash map"),
    };
    if lookup_batch(data, &mut each)? {
        return Ok(());
    }
    let map: HashMap<&MapData, K, V> = HashMap::try_from(map)?;
    for item in map.iter() {
        let (k, v) = item.context("reading the table")?;
        each(&[k], &[v]);
    }
    Ok(())
}

/// Every value of the array `map`, in index order (the same batches: the
/// kernel walks an array by key, its cursor the last key copied).
pub fn array<V: Pod>(map: &Map) -> Result<Vec<V>> {
    let Map::Array(data) = map else {
        bail!("not an array map");
    };
    let mut out = Vec::new();
    if lookup_batch(data, &mut |_: &[u32], v: &[V]| out.extend_from_slice(v))? {
        return Ok(out);
    }
    let map: Array<&MapData, V> = Array::try_from(map)?;
    (0..map.len())
        .map(|i| map.get(&i, 0).context("reading the array"))
        .collect()
}

/// Reads all of `data` with `BPF_MAP_LOOKUP_BATCH`, calling `each` per
/// chunk; `Ok(false)` if the kernel has no batch lookups for the map
/// (nothing was read then).
fn lookup_batch<K: Pod, V: Pod>(data: &MapData, each: &mut impl FnMut(&[K], &[V])) -> Result<bool> {
    let info = data.info().context("reading the map's sizes")?;
    ensure!(
        info.key_size() as usize == size_of::<K>() && info.value_size() as usize == size_of::<V>(),
        "the map's key and value sizes ({}, {}) are not this ftpct's ({}, {})",
        info.key_size(),
        info.value_size(),
        size_of::<K>(),
        size_of::<V>()
    );
    let max_entries = info.max_entries().max(1);
    let mut count = BATCH.min(max_entries);
    let mut keys: Vec<MaybeUninit<K>> = Vec::new();
    let mut values: Vec<MaybeUninit<V>> = Vec::new();
    // The kernel's cursor (a u32 bucket index for hash maps, the last key
    // for arrays, whose keys are u32 too), with room to spare.
    let (mut cursor_in, mut cursor_out) = (0u64, 0u64);
    let mut first = true;
    // Each call either copies at least one entry or ends the walk, so a
    // table whose entries come and go still ends within this many calls.
    let mut calls_left = u64::from(max_entries) + 64;
    loop {
        ensure!(
            calls_left > 0,
            "the table did not end after {max_entries} reads"
        );
        calls_left -= 1;
        keys.resize_with(count as usize, MaybeUninit::uninit);
        values.resize_with(count as usize, MaybeUninit::uninit);
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw mut cursor_in as u64 },
            out_batch: &raw mut cursor_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count,
            map_fd: data.fd().as_fd().as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `attr` is the kernel's `batch` member of `union bpf_attr`
        // (the kernel zero-fills the rest of the union past the size given);
        // `keys` and `values` hold `count` elements of exactly the map's key
        // and value size (checked above), and both cursors are 8 bytes,
        // more than the 4 the kernel reads and writes (a hash map's bucket
        // index, an array's u32 key).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                bpf_cmd::BPF_MAP_LOOKUP_BATCH as libc::c_long,
                &raw mut attr,
                size_of::<BatchAttr>() as libc::c_uint,
            )
        };
        let done = match (ret < 0).then(std::io::Error::last_os_error) {
            None => false,
            Some(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => true,
                // The first bucket did not fit: nothing was copied.
                Some(libc::ENOSPC) if count < max_entries => {
                    count = count.saturating_mul(2).min(max_entries);
                    continue;
                }
                // No batch operations for this map on this kernel.
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if first => return Ok(false),
                _ => return Err(e).context("reading the table (BPF_MAP_LOOKUP_BATCH)"),
            },
        };
        let got = (attr.count as usize).min(count as usize);
        // SAFETY: the kernel wrote `got` keys and values, each of the size
        // of `K` and `V`, at the start of the buffers; any bytes are a valid
        // `K` and `V` (both `Pod`).
        let (k, v) = unsafe {
            (
                std::slice::from_raw_parts(keys.as_ptr().cast::<K>(), got),
                std::slice::from_raw_parts(values.as_ptr().cast::<V>(), got),
            )
        };
        each(k, v);
        if done {
            return Ok(true);
        }
        cursor_in = cursor_out;
        first = false;
    }
}

/// Every entry of the hash or LRU hash `map`.
pub fn entries<K: Pod, V: Pod>(map: &Map) -> Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    for_each_chunk(map, |k: &[K], v: &[V]| {
        out.extend(k.iter().copied().zip(v.iter().copied()));
    })?;
    Ok(out)
}

/// The kernel's `ENOTSUPP` (not in libc: it is not a user-space errno, yet
/// the bpf syscall returns it for operations a map type lacks).
const ENOTSUPP: i32 = 524;
