//! What the exactly-once record holds for one partition: which of its
//! messages are finished. Pure (no I/O); written and read by
//! [`super::exactly_once`].
//!
//! A partition's messages are finished in an order close to the stream's, so
//! the set is kept as a *floor* (every message up to it is finished) and the
//! handled messages above it. The part above the floor is bounded by what a
//! group holds uncommitted, so one small value describes the whole partition
//! however long it runs. Everything in it is a fact that never becomes false
//! ("this message was finished"), so two copies merge by union: a member that
//! finds someone else wrote the record merges and writes again, and loses
//! nothing either of them recorded.

use std::collections::BTreeSet;

/// The finished messages of one partition, by stream sequence.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Every message up to this sequence is finished (handled, or committed
    /// by the group).
    floor: u64,
    /// Handled messages above `floor`.
    done: BTreeSet<u64>,
}

impl Progress {
    /// Whether the message at `sequence` is finished.
    pub(crate) fn contains(&self, sequence: u64) -> bool {
        sequence <= self.floor || self.done.contains(&sequence)
    }

    /// The message at `sequence` was handled.
    pub(crate) fn add(&mut self, sequence: u64) {
        if sequence > self.floor {
            self.done.insert(sequence);
            self.absorb();
        }
    }

    /// Every message up to `floor` is finished.
    pub(crate) fn raise_floor(&mut self, floor: u64) {
        if floor > self.floor {
            self.floor = floor;
            self.done = self.done.split_off(&(floor + 1));
            self.absorb();
        }
    }

    /// Adds everything `other` knows.
    pub(crate) fn merge(&mut self, other: &Progress) {
        self.raise_floor(other.floor);
        for &sequence in other.done.range(self.floor + 1..) {
            self.done.insert(sequence);
        }
        self.absorb();
    }

    /// Moves the floor over handled messages right above it.
    fn absorb(&mut self) {
        while self.done.first() == Some(&(self.floor + 1)) {
            self.done.pop_first();
            self.floor += 1;
        }
    }

    /// Text form: the floor, then the runs of handled sequences above it
    /// (`"120 122-130 133"`).
    pub(crate) fn encode(&self) -> String {
        let mut out = self.floor.to_string();
        let mut runs = self.done.iter().copied();
        let Some(mut start) = runs.next() else {
            return out;
        };
        let mut end = start;
        let push = |out: &mut String, start: u64, end: u64| match start == end {
            true => out.push_str(&format!(" {start}")),
            false => out.push_str(&format!(" {start}-{end}")),
        };
        for sequence in runs {
            if sequence == end + 1 {
                end = sequence;
            } else {
                push(&mut out, start, end);
                (start, end) = (sequence, sequence);
            }
        }
        push(&mut out, start, end);
        out
    }

    /// Reads the text form; `None` when it is not one.
    pub(crate) fn decode(text: &str) -> Option<Progress> {
        let mut words = text.split_ascii_whitespace();
        let mut progress = Progress {
            floor: words.next()?.parse().ok()?,
            done: BTreeSet::new(),
        };
        for run in words {
            let (start, end) = match run.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let s: u64 = run.parse().ok()?;
                    (s, s)
                }
            };
            if start > end || end - start > 1_000_000 {
                return None;
            }
            for sequence in start..=end {
                progress.add(sequence);
            }
        }
        Some(progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn floor_absorbs_handled_messages_right_above_it() {
        let mut p = Progress::default();
        p.add(2);
        p.add(3);
        assert!(!p.contains(1) && p.contains(2) && p.contains(3));
        p.add(1);
        assert_eq!(p.encode(), "3");
        p.add(7);
        p.raise_floor(5);
        assert_eq!(p.encode(), "5 7");
        assert!(p.contains(4) && !p.contains(6) && p.contains(7) && !p.contains(8));
    }

    #[test]
    fn text_form_round_trips_runs() {
        let mut p = Progress::default();
        p.raise_floor(120);
        for s in [122, 123, 124, 130, 133, 134] {
            p.add(s);
        }
        assert_eq!(p.encode(), "120 122-124 130 133-134");
        assert_eq!(Progress::decode(&p.encode()), Some(p));
        assert_eq!(Progress::decode(""), None);
        assert_eq!(Progress::decode("12 x"), None);
        assert_eq!(Progress::decode("12 9-3"), None);
    }

    proptest! {
        /// Merging two copies knows exactly what either knew, in any order,
        /// and the text form keeps it.
        #[test]
        fn merge_is_the_union(
            a_floor in 0u64..50, a in proptest::collection::vec(0u64..100, 0..40),
            b_floor in 0u64..50, b in proptest::collection::vec(0u64..100, 0..40),
        ) {
            let build = |floor: u64, handled: &[u64]| {
                let mut p = Progress::default();
                p.raise_floor(floor);
                handled.iter().for_each(|s| p.add(*s));
                p
            };
            let (pa, pb) = (build(a_floor, &a), build(b_floor, &b));
            let mut ab = pa.clone();
            ab.merge(&pb);
            let mut ba = pb.clone();
            ba.merge(&pa);
            prop_assert_eq!(&ab, &ba);
            for s in 0..110 {
                prop_assert_eq!(ab.contains(s), pa.contains(s) || pb.contains(s));
            }
            prop_assert_eq!(Progress::decode(&ab.encode()), Some(ab));
        }
    }
}
