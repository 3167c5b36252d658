//! Map key and value types shared by the eBPF programs and the userspace loader.
//! All types are `#[repr(C)]` and `Copy`; with feature `user` they implement `aya::Pod`.
#![no_std]
