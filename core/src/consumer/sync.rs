//! Whether a member knows every message the broker counts as pending: the
//! condition for committing (see [`super::scheduler`]). Pure: the scheduler
//! asks the broker and feeds the answer in.

/// What the broker said of a partition's group consumer at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncPoint {
    /// Last delivery (consumer) sequence it had sent.
    pub(crate) delivered: u64,
    /// Messages delivered and not yet acknowledged.
    pub(crate) pending: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every message the broker counts as pending is held here.
    InSync,
    /// This member has not yet received everything the broker had sent.
    Wait,
    /// Something pending is not held here (lost in transit, or delivered to
    /// a previous owner), or a gap opened since: ask again later.
    Stale,
}

/// Whether a member knows every message the broker counted as pending at
/// `point`. `held`: the latest delivery sequence of each message it holds;
/// `last_delivery`: the highest delivery it received; `gap_at`: where the
/// latest gap in its deliveries was.
///
/// Messages keep arriving while the broker's answer travels, so the check
/// does not need the member to be exactly where the broker was: once it
/// received at least up to `point.delivered` without a gap after it, the
/// messages pending at that moment are exactly those it holds with a
/// delivery sequence up to `point.delivered` (nothing is committed while out
/// of sync, and a message redelivered since counts as missing, which only
/// delays the verdict). Later deliveries are covered by the gap check that
/// runs on every delivery.
pub(crate) fn sync_verdict(
    held: impl Iterator<Item = u64>,
    last_delivery: u64,
    gap_at: u64,
    point: SyncPoint,
) -> Verdict {
    if last_delivery < point.delivered {
        return Verdict::Wait;
    }
    if gap_at > point.delivered {
        return Verdict::Stale;
    }
    if held.filter(|d| *d <= point.delivered).count() == point.pending {
        Verdict::InSync
    } else {
        Verdict::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::{SyncPoint, Verdict, sync_verdict};

    fn point(delivered: u64, pending: usize) -> SyncPoint {
        SyncPoint { delivered, pending }
    }

    #[test]
    fn in_sync_while_messages_keep_arriving() {
        // The broker had sent 1..=10, all pending; the member has received
        // up to 14 by the time the answer is read.
        let held = 1..=14;
        assert_eq!(sync_verdict(held, 14, 0, point(10, 10)), Verdict::InSync);
    }

    #[test]
    fn exactly_where_the_broker_was() {
        assert_eq!(sync_verdict(1..=10, 10, 0, point(10, 10)), Verdict::InSync);
    }

    #[test]
    fn waits_for_deliveries_still_on_their_way() {
        assert_eq!(sync_verdict(1..=7, 7, 0, point(10, 10)), Verdict::Wait);
    }

    #[test]
    fn a_pending_message_held_elsewhere_is_missing() {
        // After a takeover: deliveries 1..=4 went to the previous owner and
        // are still pending; this member saw 5..=12 (a gap at 5).
        let held = 5..=12;
        assert_eq!(sync_verdict(held, 12, 5, point(10, 10)), Verdict::Stale);
        // Once they are redelivered here (13..=16), a later answer holds.
        assert_eq!(sync_verdict(5..=16, 16, 5, point(16, 12)), Verdict::InSync);
    }

    #[test]
    fn a_gap_after_the_answer_is_not_trusted() {
        // Delivery 12 was lost in transit: 13 arrived after 11.
        let held = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13];
        assert_eq!(
            sync_verdict(held.into_iter(), 13, 13, point(10, 10)),
            Verdict::Stale
        );
    }

    #[test]
    fn a_redelivery_since_the_answer_only_delays() {
        // Message delivered as 3 was redelivered as 11 after the answer: it
        // no longer counts below the point, so the verdict waits for a new one.
        let held = [1, 2, 11, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(
            sync_verdict(held.into_iter(), 11, 0, point(10, 10)),
            Verdict::Stale
        );
    }
}
