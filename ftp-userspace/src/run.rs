//! `ftpct run`: attach in the foreground, stream the programs' aya-log output,
//! and detach cleanly on SIGINT or SIGTERM.

use anyhow::{Context as _, Result};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    attach::{self, AttachConfig},
    netns::Netns,
    pins,
};

/// aya-log's `Debug` level: the programs log admissions and drops.
pub const LOG_LEVEL_DEBUG: u8 = 4;

/// Runs until a signal arrives; always detaches before returning.
pub fn run(cfg: AttachConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let netns = Netns::current()?;
    let mut ebpf = attach::attach(&cfg)?.ebpf;
    println!("ftpct: guarding {}; Ctrl-C detaches", cfg.iface);
    let served = runtime.block_on(serve_logs(&mut ebpf));
    let detached = pins::remove_attachment(&cfg.pin_root, &netns, &cfg.iface);
    drop(ebpf);
    served?;
    detached?;
    println!("ftpct: detached from {}", cfg.iface);
    Ok(())
}

async fn serve_logs(ebpf: &mut aya::Ebpf) -> Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        // SAFETY: the logger owns the ring buffer's fd and is moved into the
        // AsyncFd, so the fd stays open for as long as it is registered.
        Ok(logger) => Some(unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }?),
        Err(err) => {
            log::warn!("program logs unavailable: {err}");
            None
        }
    };
    let Some(mut logs) = logger else {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        return Ok(());
    };
    loop {
        tokio::select! {
            guard = logs.readable_mut() => {
                let mut guard = guard.context("waiting for program logs")?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
    }
}
