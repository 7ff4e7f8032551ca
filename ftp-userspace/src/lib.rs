//! The library behind `ftpct`: loading, attaching and pinning the programs,
//! reading their tables, and the pure logic (port specs, socket-table seeding)
//! the CLI and the tests share.

pub mod attach;
pub mod batch;
pub mod binding;
pub mod daemon;
pub mod egress_hook;
pub mod events;
pub mod external;
pub mod features;
pub mod kernel_btf;
pub mod live;
pub mod lockout;
pub mod metrics;
pub mod netdev;
pub mod netlink;
pub mod netns;
pub mod pins;
pub mod portspec;
pub mod privileges;
pub mod run;
pub mod seed;
pub mod status;
pub mod tables;
pub mod tls;
pub mod tls_discovery;
pub mod upgrade;
