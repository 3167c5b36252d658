//! Ctrl-C / SIGTERM for the long-running harness binaries (`podiam-demo`, `podiam-bench`):
//! the signal only sets a flag; the program checks it between steps with [`stopped`] and
//! returns an error, so every guard (agent, moto, pods, node, pins, cgroups) is dropped and
//! torn down on the way out.
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Fails with "interrupted" once SIGINT or SIGTERM has arrived.
pub fn stopped() -> anyhow::Result<()> {
    if STOP.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Installs the handlers, runs `body` and maps its outcome to an exit code: `Ok(true)` →
/// success, `Ok(false)` → failure, `Err` → failure with `<name> failed: <error>` on stderr.
/// Children do not inherit the handlers (they are reset on exec).
pub fn run_main(name: &str, body: impl FnOnce() -> anyhow::Result<bool>) -> ExitCode {
    // SAFETY: installs an async-signal-safe handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    match body() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name} failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
