//! The receiving side: events from the subscriber library handed to the writing thread.
//!
//! Joining the group, decoding datagrams and counting invalid ones is [`p1hub_subscriber`]'s (one implementation
//! for every subscriber). [`receive`] turns its events into work for the writing thread and counts them in
//! [`Stats`]. It never blocks on the disk: the hand-over is `try_send`, and a full channel is counted as a drop.
//! The store judges sequence numbers itself (its tracker is rebuilt from the details file on restart), so every
//! telegram is handed on whatever the library's verdict.

use std::future::Future;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use p1hub_subscriber::{Event, InvalidKind, Subscriber};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::stats::{self, Stats};
use crate::store::Job;
use crate::writer::Incoming;

pub use p1hub_subscriber::SocketError as SubscribeError;

const FULL_LOG_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// Hands the subscriber's events to `tx` until `shutdown` completes or the writing thread is gone.
pub async fn receive(
    mut sub: Subscriber,
    tx: SyncSender<Incoming>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut full_logged: Option<Timestamp> = None;
    loop {
        // `next` is cancel-safe: dropping it here loses no event.
        let event = tokio::select! {
            () = &mut shutdown => break,
            e = sub.next() => match e {
                Some(e) => e,
                None => break,
            },
        };
        let now = clock.now();
        let item = match event {
            Event::Telegram { msg, datagram, .. } => {
                stats::bump(&stats.datagrams);
                stats::bump(&stats.telegrams);
                Incoming::Telegram(Job::new(msg, datagram, now))
            }
            Event::Status { status, .. } => {
                stats::bump(&stats.datagrams);
                stats::bump(&stats.statuses);
                Incoming::Status(Box::new(status))
            }
            Event::Invalid { kind, .. } => {
                stats::bump(&stats.datagrams);
                let counter = match kind {
                    InvalidKind::NotJson => &stats.not_json,
                    InvalidKind::Schema => &stats.bad_schema,
                    InvalidKind::TooLarge => &stats.oversized,
                    InvalidKind::Malformed => &stats.malformed,
                };
                stats::bump(counter);
                continue;
            }
            Event::Joined { group, interface } => {
                info!(%group, %interface, "joined the multicast group");
                continue;
            }
            // Waiting is logged by the library; liveness is the store's own business (it reads the status).
            _ => continue,
        };
        match tx.try_send(item) {
            // A status that does not fit is simply superseded by the next one.
            Ok(()) | Err(TrySendError::Full(Incoming::Status(_))) => {}
            Err(TrySendError::Full(Incoming::Telegram(_))) => {
                stats::bump(&stats.dropped_full);
                if full_logged.is_none_or(|t| now >= t + FULL_LOG_EVERY) {
                    warn!("the writing thread is behind; dropping telegrams");
                    full_logged = Some(now);
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                error!("the writing thread has stopped; no longer receiving");
                break;
            }
        }
    }
}
