//! Keeping bounds visible to the eBPF verifier.
//!
//! The optimiser removes an index mask it can prove redundant from earlier
//! branches; the verifier tracks ranges less precisely and then rejects the
//! access. Passing the index through [`opaque`] before masking keeps the mask.

/// Returns `v` unchanged while hiding its value range from the optimiser.
#[inline(always)]
pub fn opaque<T: Copy>(v: T) -> T {
    // SAFETY: a volatile read of a valid, initialised local value.
    unsafe { core::ptr::read_volatile(&v) }
}
