//! `podiam datapath-attach`: attach + pin the redirect, print `attached`, wait for
//! SIGTERM/SIGINT, exit 0 leaving the pins (fail closed across restarts).
use std::io::Write as _;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

use crate::datapath::{
    DEFAULT_AGENT_MARK, DEFAULT_PIN_DIR, Datapath, DatapathConfig, DatapathError,
};

/// Flags of `podiam datapath-attach`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// cgroup v2 directory to attach to (default: the cgroup2 root).
    #[arg(long, env = "PODIAM_CGROUP")]
    pub cgroup: Option<PathBuf>,
    /// bpffs directory for link and map pins.
    #[arg(long, env = "PODIAM_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Redirect target for IPv4 (and v4-mapped) connections, IP:PORT (the proxy listener).
    #[arg(long, env = "PODIAM_REDIRECT_V4")]
    pub redirect_v4: SocketAddrV4,
    /// Redirect target for native IPv6 connections, [IP]:PORT; without it they are refused.
    #[arg(long, env = "PODIAM_REDIRECT_V6")]
    pub redirect_v6: Option<SocketAddrV6>,
    /// Netns cookie of the host network namespace (default: this process's netns).
    #[arg(long, env = "PODIAM_HOST_NETNS_COOKIE")]
    pub host_netns_cookie: Option<u64>,
    /// SO_MARK of the agent's own sockets, never redirected (0 disables).
    #[arg(long, env = "PODIAM_AGENT_MARK", default_value_t = DEFAULT_AGENT_MARK)]
    pub agent_mark: u32,
}

/// Builds the datapath config from the flags.
pub fn config(args: &Args) -> Result<DatapathConfig, DatapathError> {
    let cgroup = match &args.cgroup {
        Some(c) => c.clone(),
        None => crate::datapath::find_cgroup2_root()?,
    };
    let host_netns_cookie = match args.host_netns_cookie {
        Some(c) => c,
        None => {
            crate::datapath::sys::current_netns_cookie().map_err(DatapathError::HostNetnsCookie)?
        }
    };
    Ok(DatapathConfig {
        cgroup,
        pin_dir: args.pin_dir.clone(),
        redirect_v4: args.redirect_v4,
        redirect_v6: args.redirect_v6,
        host_netns_cookie,
        agent_mark: args.agent_mark,
        intercepts: DatapathConfig::default_intercepts(),
    })
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Block the signals before anything else so none is lost between attach and wait.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block()?;
    let cfg = config(&args)?;
    let datapath = Datapath::attach(&cfg)?;
    println!("attached");
    std::io::stdout().flush()?;
    let sig = signals.wait()?;
    eprintln!(
        "podiam: {sig:?}: exiting, pins stay in {}",
        datapath.pin_dir().display()
    );
    drop(datapath);
    Ok(ExitCode::SUCCESS)
}
