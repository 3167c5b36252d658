//! Runs `podiam-probe` and parses its JSON report.
use std::net::SocketAddr;
use std::process::Command;

/// One probe report (`podiam-probe` prints it as a JSON line).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ProbeResult {
    /// Whether connect (and, for TCP, reading the reply) succeeded.
    pub ok: bool,
    /// `tcp`, `tcp6` or `udp`.
    pub kind: String,
    /// The address the probe dialled.
    pub target: String,
    /// Socket's local address after connect.
    #[serde(default)]
    pub local: Option<String>,
    /// Socket's peer address after connect (`getpeername`): shows any rewrite.
    #[serde(default)]
    pub peer: Option<String>,
    /// First line the server sent (TCP).
    #[serde(default)]
    pub reply: Option<String>,
    /// Error text when `ok` is false.
    #[serde(default)]
    pub error: Option<String>,
    /// errno when `ok` is false.
    #[serde(default)]
    pub errno: Option<i32>,
    /// Process id of the probe.
    pub pid: u32,
}

impl ProbeResult {
    /// Peer address parsed.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.as_deref().and_then(|p| p.parse().ok())
    }

    /// Local address parsed.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local.as_deref().and_then(|p| p.parse().ok())
    }
}

/// Runs a prepared probe command (e.g. from `pod.command(probe_bin()?)` with args) and
/// parses the report. Errors when the probe printed no JSON (usage error, crash).
pub fn run(mut cmd: Command) -> anyhow::Result<ProbeResult> {
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| {
        anyhow::anyhow!(
            "probe printed no report ({e}); status {}, stdout {stdout:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
