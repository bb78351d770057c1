//! The offline queue and the per-topic rate limit, with no I/O.
//!
//! Publications wait here while the broker is unreachable (or while the client's own small channel is full). The
//! queue is bounded in bytes: past the bound the *oldest* publications are dropped and counted, so what reaches
//! the broker after an outage is the most recent data. Publications the client had taken but the broker had not
//! acknowledged when a connection dropped come back to the *front* ([`Queue::requeue`]), so nothing acknowledged
//! to the bridge's caller is lost across a reconnect (`QoS` 1 delivery is at least once).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::topics::Publication;

/// A byte-bounded FIFO of publications that drops the oldest when full.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Publication>,
    bytes: usize,
    limit: usize,
    dropped: u64,
}

impl Queue {
    /// An empty queue holding at most `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Queue {
        Queue { items: VecDeque::new(), bytes: 0, limit, dropped: 0 }
    }

    /// Appends `p`, dropping the oldest publications until it fits. A publication larger than the whole bound is
    /// dropped itself.
    pub fn push(&mut self, p: Publication) {
        if p.size() > self.limit {
            self.dropped += 1;
            return;
        }
        self.bytes += p.size();
        self.items.push_back(p);
        self.trim();
    }

    /// Puts publications that were taken but not acknowledged back at the front, in their order.
    pub fn requeue(&mut self, ps: Vec<Publication>) {
        for p in ps.into_iter().rev() {
            self.bytes += p.size();
            self.items.push_front(p);
        }
        self.trim();
    }

    /// Puts `ps` at the front, in their order, before everything queued (availability and discovery go first
    /// after a reconnect), and makes room by dropping the oldest publications *behind* them: a full queue keeps
    /// these (only if they alone exceed the bound are they dropped too).
    pub fn push_first(&mut self, ps: Vec<Publication>) {
        let n = ps.len();
        for p in ps.into_iter().rev() {
            self.bytes += p.size();
            self.items.push_front(p);
        }
        while self.bytes > self.limit {
            let Some(old) = self.items.remove(n) else { break };
            self.bytes -= old.size();
            self.dropped += 1;
        }
        self.trim();
    }

    /// The oldest publication, if any.
    #[must_use]
    pub fn front(&self) -> Option<&Publication> {
        self.items.front()
    }

    /// Removes the oldest publication.
    pub fn pop(&mut self) -> Option<Publication> {
        let p = self.items.pop_front()?;
        self.bytes -= p.size();
        Some(p)
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Publications held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Publications dropped because the queue was full, since start.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn trim(&mut self) {
        while self.bytes > self.limit {
            match self.items.pop_front() {
                Some(old) => {
                    self.bytes -= old.size();
                    self.dropped += 1;
                }
                None => break,
            }
        }
    }
}

/// At most one publication per topic per interval.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: HashMap<String, Instant>,
}

impl RateLimit {
    /// A limit of one publication per topic per `every` (zero: no limit).
    #[must_use]
    pub fn new(every: Duration) -> RateLimit {
        RateLimit { every, last: HashMap::new() }
    }

    /// Whether a publication on `topic` may go out at `now`; if so, `now` is remembered for it.
    pub fn allow(&mut self, topic: &str, now: Instant) -> bool {
        if self.every.is_zero() {
            return true;
        }
        match self.last.get_mut(topic) {
            Some(last) if now.duration_since(*last) < self.every => false,
            Some(last) => {
                *last = now;
                true
            }
            None => {
                self.last.insert(topic.to_owned(), now);
                true
            }
        }
    }

    /// Forgets every topic, so the next publication of each goes out (after a reconnect to a broker that may have
    /// lost its retained messages).
    pub fn reset(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, len: usize) -> Publication {
        Publication { topic: topic.into(), payload: vec![b'x'; len], retain: true, qos1: true, limited: true }
    }

    #[test]
    fn a_full_queue_keeps_the_newest() {
        let one = p("t/1", 84).size();
        assert_eq!(one, 103);
        let mut q = Queue::new(one * 3);
        for i in 0..5 {
            q.push(p(&format!("t/{i}"), 84));
        }
        assert_eq!((q.len(), q.bytes(), q.dropped()), (3, one * 3, 2));
        assert_eq!(q.pop().map(|p| p.topic), Some("t/2".into()));
        // Too large for the whole queue: dropped itself, nothing else lost.
        q.push(p("big", 1000));
        assert_eq!((q.len(), q.dropped()), (2, 3));
    }

    #[test]
    fn unacknowledged_publications_go_back_to_the_front_in_order() {
        let mut q = Queue::new(10_000);
        q.push(p("new", 1));
        q.requeue(vec![p("old/1", 1), p("old/2", 1)]);
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|p| p.topic)).collect();
        assert_eq!(order, ["old/1", "old/2", "new"]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn what_goes_first_survives_a_full_queue_and_the_oldest_behind_it_is_dropped() {
        let one = p("t/0", 84).size();
        let mut q = Queue::new(one * 3);
        for i in 0..3 {
            q.push(p(&format!("t/{i}"), 84));
        }
        q.push_first(vec![p("off", 84)]);
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|p| p.topic)).collect();
        assert_eq!(order, ["off", "t/1", "t/2"]);
        assert_eq!((q.bytes(), q.dropped()), (0, 1));
    }

    #[test]
    fn the_rate_limit_is_per_topic() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_secs(10));
        assert!(r.allow("a", t0));
        assert!(r.allow("b", t0));
        assert!(!r.allow("a", t0 + Duration::from_secs(9)));
        assert!(r.allow("a", t0 + Duration::from_secs(10)));
        r.reset();
        assert!(r.allow("b", t0 + Duration::from_secs(1)));
        let mut none = RateLimit::new(Duration::ZERO);
        assert!(none.allow("a", t0) && none.allow("a", t0));
    }
}
