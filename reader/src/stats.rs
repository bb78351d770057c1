//! Counters the reader keeps since it started, shared between the receiving task and the writing thread.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters (relaxed atomics: each is exact, their combination is a snapshot in motion).
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Stats`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Stats {
            /// Reads every counter.
            #[must_use]
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

stats! {
    /// Datagrams received.
    datagrams,
    /// Valid telegram messages received.
    telegrams,
    /// Valid status messages received.
    statuses,
    /// Telegrams written to every file.
    written,
    /// Telegrams dropped as duplicates.
    duplicates,
    /// Telegrams dropped because their sequence number was too old to tell.
    stale,
    /// Telegrams dropped because their sequence number jumped further than the time since allows.
    implausible,
    /// Sequence numbers found missing (less those that arrived late).
    missed,
    /// Listener restarts (new boot ids after a known one).
    restarts,
    /// Datagrams that were not JSON.
    not_json,
    /// Datagrams of another schema version.
    bad_schema,
    /// Datagrams too large to be a message.
    oversized,
    /// JSON of the right version that does not match the schema.
    malformed,
    /// Open datagrams refused because a key is set (sealed mode without `accept_open`).
    refused_open,
    /// Sealed datagrams refused because this host has no key.
    refused_no_key,
    /// Sealed datagrams refused because they were sealed with a key not configured here.
    refused_unknown_key,
    /// Sealed datagrams of a format version this build does not read.
    refused_version,
    /// Sealed datagrams that failed authentication (forged, altered, truncated).
    forged,
    /// Authentic sealed datagrams seen before for their listener and boot (replays).
    replayed,
    /// Authentic sealed datagrams sent too far from this host's clock (old captures, or clocks that disagree).
    outside_window,
    /// Telegrams dropped because the memory buffer was full while the disk could not be written.
    dropped_full,
    /// Telegrams dropped because their listener name cannot be a directory name (too long).
    dropped_listeners,
    /// Listeners set aside (files closed) to make room for a new one, beyond the most kept.
    set_aside,
    /// Failed attempts to write.
    write_errors,
    /// Minute rows written to the history database.
    history_rows,
    /// Failed attempts to open or write the history database.
    history_errors,
    /// Minute rows dropped because the history queue was full.
    history_dropped,
}

/// Adds one, never beyond `u64::MAX`.
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `n`, never beyond `u64::MAX`.
pub fn add(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_add(n)));
}

/// Takes one away, never below zero.
pub fn drop_one(counter: &AtomicU64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
}
