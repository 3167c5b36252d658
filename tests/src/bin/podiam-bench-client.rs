//! Load generator run inside simulated pods by `podiam-bench` (see `cargo xtask bench`).
//!
//! Usage: `podiam-bench-client '<json Job>'`; prints one JSON line ([`Report`]) on stdout.
//! Blocking sockets, one connection at a time per thread, so what is timed is exactly one
//! `connect()` (+ one HTTP/1.1 exchange with `Connection: close`), nothing else.
//!
//! Modes:
//! - `connect`: `connect()` + `close()` in a loop until the deadline; `SO_LINGER {1, 0}` so
//!   the close sends RST and leaves no TIME_WAIT socket (the pod would run out of ephemeral
//!   ports at ~10⁴ connections/s otherwise).
//! - `http`: GET `path` on a new connection per request until the deadline, `threads`
//!   threads; every latency (µs, connect to last body byte) is reported.
//! - `first`: one GET at `start_at_ns`, retried every 20 ms until a 200 with `expect` in the
//!   body or 30 s; reports the first attempt's latency and the time to success.
//! - `cgroups`: for each cgroup directory (index i), move this process there
//!   (`cgroup.procs`), then one GET of `path` with `{i}` replaced by i (each cgroup is a
//!   different workload of the static inventory, with its own role).
//!
//! Before starting it widens the pod netns's ephemeral port range (`ip_local_port_range`) —
//! a per-network-namespace sysctl, so only the pod is affected.
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What to do (the single JSON argument).
#[derive(Debug, Deserialize)]
struct Job {
    mode: String,
    addr: SocketAddr,
    #[serde(default)]
    path: String,
    #[serde(default)]
    host: String,
    /// Substring the body of a good answer contains.
    #[serde(default)]
    expect: String,
    /// Start time, nanoseconds since the Unix epoch (CLOCK_REALTIME); 0 = now.
    #[serde(default)]
    start_at_ns: u64,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default = "one")]
    threads: usize,
    #[serde(default)]
    cgroups: Vec<String>,
}

fn one() -> usize {
    1
}

/// What happened (one JSON line on stdout).
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Successful operations.
    ok: u64,
    /// Failed operations (connect error, non-200, body without `expect`).
    errors: u64,
    /// Seconds from start to the end of the last operation.
    elapsed_s: f64,
    /// Latency of every successful request (`http`, `cgroups`), µs.
    lat_us: Vec<u32>,
    /// Duration of every successful `connect()` (`connect`), ns.
    lat_ns: Vec<u32>,
    /// First attempt latency, µs (`first`).
    first_us: u64,
    /// First attempt succeeded (`first`).
    first_ok: bool,
    /// µs from the start time until the first success (`first`).
    ok_after_us: u64,
    /// Attempts made (`first`).
    attempts: u64,
    /// Start was late by this many µs (process started after `start_at_ns`).
    late_us: u64,
    /// One example error.
    error: String,
}

fn main() -> ExitCode {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: podiam-bench-client '<json job>'");
        return ExitCode::FAILURE;
    };
    let job: Job = match serde_json::from_str(&arg) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("bad job {arg:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Per-netns sysctl (this process is in the pod netns); best effort.
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "10000 65000");
    let report = match job.mode.as_str() {
        "connect" => wait_start(&job).map(|late| with_late(connect_loop(&job), late)),
        "http" => wait_start(&job).map(|late| with_late(http_loop(&job), late)),
        "first" => wait_start(&job).map(|late| with_late(first(&job), late)),
        "cgroups" => Ok(cgroups(&job)),
        other => Err(format!("unknown mode {other:?}")),
    };
    match report {
        Ok(r) => match serde_json::to_string(&r) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn with_late(mut r: Report, late: u64) -> Report {
    r.late_us = late;
    r
}

/// Sleeps until `start_at_ns`; returns how late we already were, µs.
fn wait_start(job: &Job) -> Result<u64, String> {
    if job.start_at_ns == 0 {
        return Ok(0);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();
    let at = u128::from(job.start_at_ns);
    if now >= at {
        return Ok(u64::try_from((now - at) / 1000).unwrap_or(u64::MAX));
    }
    let wait = u64::try_from(at - now).unwrap_or(0);
    std::thread::sleep(Duration::from_nanos(wait));
    Ok(0)
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid fd with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn connect_loop(job: &Job) -> Report {
    let mut r = Report::default();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(job.duration_ms);
    while Instant::now() < deadline {
        let t = Instant::now();
        match TcpStream::connect(job.addr) {
            Ok(s) => {
                r.lat_ns
                    .push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                set_linger_zero(&s);
                drop(s);
                r.ok += 1;
            }
            Err(e) => {
                r.errors += 1;
                r.error = e.to_string();
            }
        }
    }
    r.elapsed_s = start.elapsed().as_secs_f64();
    r
}

/// One GET on a new connection: Ok(latency) when 200 and the body contains `expect`.
fn get_once(job: &Job, path: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&job.addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: podiam-bench\r\nConnection: close\r\n\r\n",
        path, job.host
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut complete_at = None;
    loop {
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => return Err(format!("read: {e}")),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if complete_at.is_none() && response_complete(&buf) {
            complete_at = Some(t0.elapsed());
        }
    }
    // EOF: the server closed after `Connection: close` (so no TIME_WAIT here).
    let lat = complete_at.unwrap_or_else(|| t0.elapsed());
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        let first = text.lines().next().unwrap_or("").to_string();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        return Err(format!(
            "{first} {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    if !job.expect.is_empty() && !text.contains(&job.expect) {
        return Err(format!("200 without {:?}", job.expect));
    }
    Ok(lat)
}

/// Headers read and `Content-Length` bytes of body present.
fn response_complete(buf: &[u8]) -> bool {
    let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(len) => buf.len() >= pos + 4 + len,
        None => false,
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn http_loop(job: &Job) -> Report {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(job.duration_ms);
    let threads = job.threads.max(1);
    let mut total = Report::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut r = Report::default();
                    while Instant::now() < deadline {
                        match get_once(job, &job.path) {
                            Ok(l) => {
                                r.ok += 1;
                                r.lat_us.push(micros(l));
                            }
                            Err(e) => {
                                r.errors += 1;
                                r.error = e;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        for h in handles {
            if let Ok(r) = h.join() {
                total.ok += r.ok;
                total.errors += r.errors;
                total.lat_us.extend(r.lat_us);
                if !r.error.is_empty() {
                    total.error = r.error;
                }
            }
        }
    });
    total.elapsed_s = start.elapsed().as_secs_f64();
    total
}

fn first(job: &Job) -> Report {
    let mut r = Report::default();
    let start = Instant::now();
    let give_up = start + Duration::from_secs(30);
    loop {
        r.attempts += 1;
        let t = Instant::now();
        let res = get_once(job, &job.path);
        if r.attempts == 1 {
            r.first_us = u64::from(micros(t.elapsed()));
            r.first_ok = res.is_ok();
        }
        match res {
            Ok(_) => {
                r.ok = 1;
                r.ok_after_us = u64::from(micros(start.elapsed()));
                break;
            }
            Err(e) => {
                r.errors += 1;
                r.error = e;
            }
        }
        if Instant::now() > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    r.elapsed_s = start.elapsed().as_secs_f64();
    r
}

fn cgroups(job: &Job) -> Report {
    let mut r = Report::default();
    let start = Instant::now();
    for (i, dir) in job.cgroups.iter().enumerate() {
        let procs = std::path::Path::new(dir).join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, "0") {
            r.errors += 1;
            r.error = format!("{}: {e}", procs.display());
            continue;
        }
        match get_once(job, &job.path.replace("{i}", &i.to_string())) {
            Ok(l) => {
                r.ok += 1;
                r.lat_us.push(micros(l));
            }
            Err(e) => {
                r.errors += 1;
                r.error = e;
            }
        }
    }
    r.elapsed_s = start.elapsed().as_secs_f64();
    r
}
