//! The way from the scheduler to the application: each round's hand-outs go
//! in one send (one wake of the application's task per round, not one per
//! message), and are taken one at a time.
//!
//! Nothing is taken while the member's fence is closed after a stall (see
//! [`super::fence`]); what was handed out for a partition given up since is
//! dropped here without a word to the scheduler.
//!
//! A round's vector is a few KiB (tens of deliveries). Emptied ones go back
//! to the scheduler instead of being freed: with glibc every allocation that
//! large first merges the small chunks freed since (`malloc_consolidate`),
//! and a reader frees many (each message's headers), which cost 2–3 % of a
//! group reader's samples when each round allocated its vector.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::mpsc;

use super::{Delivery, fence::Fence};

/// Most emptied vectors kept for reuse.
const SPARE: usize = 4;

/// Emptied round vectors, shared by both ends.
#[derive(Debug, Default)]
struct Spare(Mutex<Vec<Vec<Delivery>>>);

/// The scheduler's end.
#[derive(Debug)]
pub(crate) struct Outlet {
    rounds: mpsc::UnboundedSender<Vec<Delivery>>,
    spare: Arc<Spare>,
}

/// The application's end.
#[derive(Debug)]
pub(crate) struct Inbox {
    rounds: mpsc::UnboundedReceiver<Vec<Delivery>>,
    /// The rest of the round being taken.
    queued: VecDeque<Delivery>,
    spare: Arc<Spare>,
    fence: Arc<Fence>,
}

pub(crate) fn channel(fence: Arc<Fence>) -> (Outlet, Inbox) {
    let (send, receive) = mpsc::unbounded_channel();
    let spare = Arc::<Spare>::default();
    (
        Outlet {
            rounds: send,
            spare: spare.clone(),
        },
        Inbox {
            rounds: receive,
            queued: VecDeque::new(),
            spare,
            fence,
        },
    )
}

impl Outlet {
    /// An empty vector for the next round (one used before, if any).
    pub(crate) fn empty(&self) -> Vec<Delivery> {
        self.spare.0.lock().unwrap().pop().unwrap_or_default()
    }

    /// Sends a round; if the application is gone, the deliveries' drop
    /// reports them back.
    pub(crate) fn send(&self, round: Vec<Delivery>) {
        let _ = self.rounds.send(round);
    }

    /// Resolves once the application's end is dropped.
    pub(crate) async fn closed(&self) {
        self.rounds.closed().await
    }
}

impl Inbox {
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.queued.pop_front() {
                if !self.fence.open() {
                    let rounds = &self.rounds;
                    if !self.fence.until_open(|| rounds.is_closed()).await {
                        self.queued.clear();
                        return None;
                    }
                }
                if delivery.is_given_up() {
                    // Its settlement does nothing: dropped, it is gone.
                    continue;
                }
                return Some(delivery);
            }
            let round = VecDeque::from(self.rounds.recv().await?);
            // Empty, so turning it back into a vector moves nothing.
            let done = Vec::from(std::mem::replace(&mut self.queued, round));
            if done.capacity() > 0 {
                let mut spare = self.spare.0.lock().unwrap();
                if spare.len() < SPARE {
                    spare.push(done);
                }
            }
        }
    }

    /// Drops what is queued and sent (a closing consumer gives it back).
    pub(crate) fn clear(&mut self) {
        self.queued.clear();
        while let Ok(round) = self.rounds.try_recv() {
            drop(round);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The vector of a round taken to its end is the next round's.
    #[tokio::test]
    async fn an_emptied_round_is_used_again() {
        let fence = std::sync::Arc::new(super::Fence::new(std::time::Duration::from_secs(10)));
        let (outlet, mut inbox) = super::channel(fence);
        let first = outlet.empty();
        assert_eq!(first.capacity(), 0);
        // No delivery is needed to see the vector travel: an empty round
        // with room is sent, then a second one that ends the wait.
        outlet.send(Vec::with_capacity(32));
        outlet.send(Vec::new());
        let taken = tokio::time::timeout(std::time::Duration::from_millis(50), inbox.next()).await;
        assert!(taken.is_err(), "two empty rounds hold no delivery");
        assert_eq!(outlet.empty().capacity(), 32);
    }
}
