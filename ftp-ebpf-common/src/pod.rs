//! `aya::Pod` for the map types, so user space can read and write them.
//!
//! SAFETY (for every impl below): each type is `#[repr(C)]`, `Copy`, contains only
//! integers and arrays of integers with explicit padding fields, so every bit
//! pattern is valid and there is no uninitialised padding.

use crate::{
    attachment::Attachment,
    control::{ControlKey, ControlState},
    events::{Event, EventRate},
    flow::{BounceKey, ClientKey, ClientValue, ExpectKey, ExpectValue, FlowKey, FlowValue},
    layout::Layout,
    nat::ExternalKey,
    policy::Policy,
    tls::{TlsCall, TlsConfig, TlsObject, TlsTie},
};

// SAFETY: see the module comment.
unsafe impl aya::Pod for Attachment {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for Layout {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for Event {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for EventRate {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for ExternalKey {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for ExpectKey {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for ExpectValue {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for FlowValue {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for ControlKey {}
// SAFETY: ControlState also holds parser state with enum fields; user space only
// ever writes states that are all zeroes or copied from the kernel, and reads
// them as plain bytes.
unsafe impl aya::Pod for ControlState {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for Policy {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for ClientKey {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for ClientValue {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for BounceKey {}

// SAFETY: see the module comment.
unsafe impl aya::Pod for TlsConfig {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for TlsCall {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for TlsObject {}
// SAFETY: see the module comment.
unsafe impl aya::Pod for TlsTie {}
