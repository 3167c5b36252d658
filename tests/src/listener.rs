//! A TCP listener for tests: bound inside a netns, answers every connection with one line
//! (`<tag> <peer>\n`), drains what the client sends until it closes, and reports what it
//! accepted (one connection at a time).
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::netns::NetNs;

/// One accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// `accept()`'s peer address (client IP and port).
    pub peer: SocketAddr,
    /// The listener-side address of the connection.
    pub local: SocketAddr,
}

/// A listening socket with a background accept thread; stops on drop.
pub struct TestListener {
    addr: SocketAddr,
    rx: mpsc::Receiver<Accepted>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestListener {
    /// Binds `addr` from a thread inside `netns` (the socket stays in that netns) and starts
    /// accepting. Each connection gets `"{tag} {peer}\n"` and is closed.
    pub fn bind_in(netns: &NetNs, addr: SocketAddr, tag: &str) -> anyhow::Result<TestListener> {
        let listener = netns.run(move || TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let tag = tag.to_string();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let local = s.local_addr().unwrap_or(addr);
                        let _ = s.set_nonblocking(false);
                        let _ = writeln!(s, "{tag} {peer}");
                        let _ = tx.send(Accepted { peer, local });
                        // Drain what the client sent (until it closes, 200 ms at most) so
                        // closing with unread data does not turn into an RST.
                        let _ = s.shutdown(std::net::Shutdown::Write);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut sink = [0u8; 512];
                        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(TestListener {
            addr,
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next accepted connection, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Accepted> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Connections accepted so far and not yet taken with [`Self::next`].
    pub fn drain(&self) -> Vec<Accepted> {
        self.rx.try_iter().collect()
    }
}

impl Drop for TestListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
