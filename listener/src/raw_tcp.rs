//! The raw telegram TCP server: every client gets the byte-exact, CRC-checked telegrams, as ser2net gives to one.
//!
//! Domoticz, Home Assistant's DSMR integration (`socket://`) and dsmr-reader read this. The port is never stalled
//! by a client: [`RawHub::publish`] is synchronous and only queues. Each client has a writer task and a budget of
//! queued bytes (`listener.raw_tcp_client_buffer`); a client whose queue would exceed it is dropped at once and its
//! connection reset. The kernel's send buffer for each client is set to the same size, so a stalled client holds
//! at most about twice its budget. What clients send is ignored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Telegrams queued per client at most (the byte budget is the real bound; this only sizes the channel).
const CLIENT_QUEUE: usize = 1024;

/// The set of connected clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RawHub {
    clients: Arc<Mutex<Vec<Client>>>,
    budget: usize,
    tracker: TaskTracker,
    token: CancellationToken,
}

#[derive(Debug)]
struct Client {
    peer: String,
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    /// Cancelled when the client is dropped, so a writer blocked on a stalled socket lets go at once.
    drop: CancellationToken,
}

impl RawHub {
    /// A hub allowing `budget` queued bytes per client. Writer tasks run on `tracker` and stop on `token`.
    #[must_use]
    pub fn new(budget: usize, tracker: TaskTracker, token: CancellationToken) -> Self {
        RawHub { clients: Arc::new(Mutex::new(Vec::new())), budget, tracker, token }
    }

    /// Clients connected now.
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Queues a telegram for every client, dropping those that are too far behind. Never waits.
    pub fn publish(&self, telegram: &Bytes) {
        let len = telegram.len();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.retain(|c| {
            let queued = c.queued.load(Ordering::Acquire);
            if queued + len > self.budget {
                tracing::warn!(peer = %c.peer, queued, budget = self.budget, "raw TCP client fell behind: dropped");
                c.drop.cancel();
                return false;
            }
            c.queued.fetch_add(len, Ordering::AcqRel);
            match c.tx.try_send(telegram.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(peer = %c.peer, "raw TCP client fell behind: dropped");
                    c.drop.cancel();
                    false
                }
                // The writer ended: the client went away.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Adds a client writing to `writer`.
    pub fn add<W>(&self, writer: W, peer: String)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let drop = self.token.child_token();
        self.tracker.spawn(write_client(writer, rx, queued.clone(), drop.clone(), peer.clone()));
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).push(Client { peer, tx, queued, drop });
    }
}

async fn write_client<W>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    drop: CancellationToken,
    peer: String,
) where
    W: AsyncWrite + Unpin,
{
    loop {
        let telegram = tokio::select! {
            () = drop.cancelled() => return,
            t = rx.recv() => match t {
                Some(t) => t,
                None => break,
            },
        };
        let written = tokio::select! {
            () = drop.cancelled() => return,
            r = writer.write_all(&telegram) => r,
        };
        if let Err(e) = written {
            tracing::info!(%peer, cause = %e, "raw TCP client went away");
            return;
        }
        queued.fetch_sub(telegram.len(), Ordering::AcqRel);
    }
    let _ = writer.shutdown().await;
}

/// Accepts clients on `listener` until `token` is cancelled.
pub async fn serve(listener: TcpListener, hub: RawHub, token: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let sock = socket2::SockRef::from(&stream);
                // A dropped client is reset, not drained: its unsent telegrams are discarded at once.
                let _ = sock.set_linger(Some(std::time::Duration::ZERO));
                let _ = sock.set_send_buffer_size(hub.budget);
                let _ = stream.set_nodelay(true);
                tracing::info!(%peer, clients = hub.client_count() + 1, "raw TCP client connected");
                hub.add(stream, peer.to_string());
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(cause = %e, "raw TCP accept failed");
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_stalled_client_is_dropped_and_the_others_get_every_byte() {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let hub = RawHub::new(4096, tracker.clone(), token.clone());
        let mut readers = Vec::new();
        for i in 0..3 {
            let (w, r) = tokio::io::duplex(1 << 20);
            hub.add(w, format!("reader {i}"));
            readers.push(r);
        }
        // A pipe of 64 bytes that nobody reads: the writer blocks, its queue grows past the budget.
        let (stalled, _never_read) = tokio::io::duplex(64);
        hub.add(stalled, "stalled".into());

        let telegram = Bytes::from(vec![b'x'; 1000]);
        for _ in 0..20 {
            hub.publish(&telegram);
            tokio::task::yield_now().await;
        }
        assert_eq!(hub.client_count(), 3, "the stalled client is gone, the others stay");
        // Dropping the hub ends each writer after its queue is written.
        drop(hub);
        tracker.close();
        tracker.wait().await;
        for mut r in readers {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("read");
            assert_eq!(got.len(), 20_000);
        }
    }

    #[tokio::test]
    async fn a_client_that_went_away_is_forgotten() {
        let tracker = TaskTracker::new();
        let hub = RawHub::new(4096, tracker.clone(), CancellationToken::new());
        let (w, r) = tokio::io::duplex(1 << 16);
        hub.add(w, "gone".into());
        drop(r);
        let telegram = Bytes::from_static(b"/X\r\n!0000\r\n");
        hub.publish(&telegram);
        tokio::task::yield_now().await;
        hub.publish(&telegram);
        tokio::task::yield_now().await;
        hub.publish(&telegram);
        assert_eq!(hub.client_count(), 0);
    }
}
