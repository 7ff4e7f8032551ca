//! Build-dependency anchor for aya-build (the programs are the `ftp-ebpf` binary).
#![no_std]
