//! What keeps a member that stalled from running messages another member
//! may have run meanwhile.
//!
//! A member's process can stop for longer than the handover timeout and
//! come back: a virtual machine paused or moved, a long garbage collection
//! in the application, SIGSTOP, a machine starved of CPU. Meanwhile its
//! membership announcements and its pulls stopped too; the group took its
//! partitions, the broker's pin moved to the new owner, and the new owner
//! ran what the stalled member had been handed (see the scheduler's
//! `check_lost`). Back from the stall, the member still holds those
//! messages, some queued for the application, and would run them again as
//! first deliveries.
//!
//! So the scheduler beats on every round it runs (at least every
//! `SYNC_INTERVAL`, its tick). When it finds its last beat older than a
//! third of the handover timeout, the member stalled long enough for its
//! pin to be at risk (the broker drops a pin a handover timeout after the
//! last pull request it got; requests leave every third of it): nothing is
//! handed to the application until the scheduler has asked the broker, for
//! every partition it owns, whether the pin is still the one its messages
//! came with. A partition whose pin moved, or that no answer confirms, is
//! given up without settling anything it held (another member has it, or
//! gets it after `ack_wait`), and taken again like a new one when the
//! member list says so. The application's end of the way ([`super::inbox`])
//! checks the beat too, since after a stall it may run before the
//! scheduler: it waits for the scheduler's verdict, then drops what was
//! handed out for a partition given up since.
//!
//! A handler that was running when the process stopped finishes when it
//! comes back; nothing can stop it, and its settlement is ignored if its
//! partition was given up.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

/// How often a waiting application looks at the fence again when no
/// verdict wakes it (the scheduler may be gone).
const RECHECK: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(crate) struct Fence {
    start: Instant,
    /// Nanoseconds from `start` to the scheduler's latest round.
    beat: AtomicU64,
    /// A stall was noticed; hand-outs wait for the scheduler's verdict.
    checking: AtomicBool,
    /// How many times partitions were given up: a delivery handed out
    /// under an older count may belong to one.
    given_up: AtomicU64,
    /// A beat older than this is a stall.
    stall: Duration,
    verdict: Notify,
}

impl Fence {
    pub(crate) fn new(handover_timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            beat: AtomicU64::new(0),
            checking: AtomicBool::new(false),
            given_up: AtomicU64::new(0),
            stall: handover_timeout / 3,
            verdict: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The scheduler runs a round. True when its last round was a stall ago
    /// (hand-outs wait from now on, until [`Self::checked`]).
    pub(crate) fn beat(&self) -> bool {
        let now = self.now();
        let stalled =
            now.saturating_sub(self.beat.load(Ordering::Acquire)) > self.stall.as_nanos() as u64;
        if stalled {
            self.checking.store(true, Ordering::Release);
        }
        // After `checking`: whoever reads this beat also reads that flag.
        self.beat.store(now, Ordering::Release);
        stalled
    }

    /// Whether the scheduler is checking its partitions after a stall.
    pub(crate) fn checking(&self) -> bool {
        self.checking.load(Ordering::Acquire)
    }

    /// The scheduler's verdict is in: hand-outs go on.
    pub(crate) fn checked(&self) {
        self.checking.store(false, Ordering::Release);
        self.verdict.notify_waiters();
    }

    /// Partitions were given up: deliveries handed out before are checked
    /// once more before the application gets them.
    pub(crate) fn give_up(&self) {
        self.given_up.fetch_add(1, Ordering::AcqRel);
    }

    /// The count to hand a delivery out under.
    pub(crate) fn given_up(&self) -> u64 {
        self.given_up.load(Ordering::Acquire)
    }

    /// Whether a delivery may go to the application now: the scheduler ran
    /// within a stall's time and is not checking.
    pub(crate) fn open(&self) -> bool {
        let beat = self.beat.load(Ordering::Acquire);
        !self.checking() && self.now().saturating_sub(beat) <= self.stall.as_nanos() as u64
    }

    /// Waits until [`Self::open`], or until `gone` says the scheduler is
    /// gone (false then).
    pub(crate) async fn until_open(&self, gone: impl Fn() -> bool) -> bool {
        loop {
            let verdict = self.verdict.notified();
            tokio::pin!(verdict);
            verdict.as_mut().enable();
            if self.open() {
                return true;
            }
            if gone() {
                return false;
            }
            // The verdict wakes this at once; the timeout covers a
            // scheduler that beats again without a stall to check (its
            // next round) and one that is gone.
            let _ = tokio::time::timeout(RECHECK, verdict).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_beat_closes_the_fence_until_the_verdict() {
        let fence = Fence::new(Duration::from_millis(300));
        assert!(!fence.beat(), "the first beat comes right after the start");
        assert!(fence.open());
        // The stall itself: time passes and the scheduler does not beat.
        std::thread::sleep(Duration::from_millis(150));
        assert!(!fence.open(), "no beat for longer than a stall");
        assert!(fence.beat(), "the scheduler notices its own stall");
        assert!(!fence.open(), "and checks before anything is handed out");
        fence.checked();
        assert!(fence.open());
        assert!(!fence.beat());
    }

    #[tokio::test]
    async fn a_waiting_application_goes_on_at_the_verdict() {
        let fence = std::sync::Arc::new(Fence::new(Duration::from_secs(3)));
        fence.checking.store(true, Ordering::Release);
        fence.beat();
        let waiter = {
            let fence = fence.clone();
            tokio::spawn(async move { fence.until_open(|| false).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        fence.checked();
        assert!(waiter.await.unwrap());
        fence.checking.store(true, Ordering::Release);
        assert!(!fence.until_open(|| true).await, "a scheduler that is gone");
    }
}
