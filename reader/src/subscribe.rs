//! The receiving side: events from the subscriber library handed to the writing thread.
//!
//! Joining the group, decoding datagrams and counting invalid ones is [`p1hub_subscriber`]'s (one implementation
//! for every subscriber). [`receive`] turns its events into work for the writing thread and counts them in
//! [`Stats`]. It never blocks on the disk: the hand-over is a push onto the [`Inbox`], which is bounded in bytes and drops
//! its oldest telegrams (counted) when full.
//! The store judges sequence numbers itself (its tracker is rebuilt from the details file on restart), so every
//! telegram is handed on whatever the library's verdict.

use std::future::Future;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use p1hub_subscriber::{Event, InvalidKind, Refusal, Subscriber};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::stats::{self, Stats};
use crate::store::Job;
use crate::writer::{Closed, Inbox, Incoming};

pub use p1hub_subscriber::SocketError as SubscribeError;

const SUMMARY_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// Hands the subscriber's events to `inbox` until `shutdown` completes or the writing thread is gone.
pub async fn receive(
    mut sub: Subscriber,
    inbox: Arc<Inbox>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut full_logged: Option<Timestamp> = None;
    let mut dropped_since = 0_u64;
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
            Event::Refused { refusal, .. } => {
                // Counted here; said once and summarised by the library.
                stats::bump(&stats.datagrams);
                stats::bump(match refusal {
                    Refusal::Open => &stats.refused_open,
                    Refusal::NoKey { .. } => &stats.refused_no_key,
                    Refusal::UnknownKey { .. } => &stats.refused_unknown_key,
                    Refusal::UnknownVersion { .. } => &stats.refused_version,
                    Refusal::Replayed => &stats.replayed,
                    Refusal::OutsideWindow { .. } => &stats.outside_window,
                    _ => &stats.forged,
                });
                continue;
            }
            Event::Joined { group, interface } => {
                info!(%group, %interface, "joined the multicast group");
                continue;
            }
            // Waiting is logged by the library; liveness is the store's own business (it reads the status).
            _ => continue,
        };
        match inbox.push(item) {
            Ok(0) => {}
            Ok(dropped) => {
                dropped_since += dropped;
                if full_logged.is_none_or(|t| now >= t + SUMMARY_EVERY) {
                    warn!(
                        dropped = dropped_since,
                        limit_bytes = inbox.limit(),
                        "the memory queue is full (the disk cannot be written, or not fast enough); dropping the oldest telegrams"
                    );
                    full_logged = Some(now);
                    dropped_since = 0;
                }
            }
            Err(Closed) => {
                error!("the writing thread has stopped; no longer receiving");
                break;
            }
        }
    }
}
