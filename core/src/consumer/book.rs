//! The pure part of a consumer member: what it holds and what may run next.
//! No I/O, no clock, no broker types: events go in as method calls and the
//! decisions come out as [`Action`]s, which the scheduler carries out. That
//! makes the rules below testable over random event sequences (see the
//! property tests at the end).
//!
//! Per partition a [`Book`] keeps the delivered but uncommitted messages in
//! stream order, and per key the line of its messages: only the first of a
//! key's line may run, so one key never runs twice at once and keys keep
//! stream order. A finished message (acked or dead-lettered) lets the next
//! one of its key run and may move the commit point over the contiguous
//! prefix of finished messages. The [`Machine`] hands runnable messages out
//! round robin over the partitions, never more than `concurrency` at once.
//! `M` is what the scheduler keeps with each message (the broker's message);
//! the book only stores and returns it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

/// The hasher of the consumer's maps touched for every message (a key's
/// line, what the application holds, the deliveries handed out): foldhash
/// instead of the standard SipHash, which showed in the reader's profile;
/// seeded per process.
pub(crate) type Fast = foldhash::fast::RandomState;

/// One held message's place: its partition and stream sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Token {
    pub(crate) partition: u32,
    pub(crate) sequence: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Behind an earlier message of its key.
    Waiting,
    /// May run; queued for the application.
    Runnable,
    /// Held by the application.
    InApp,
    /// Failed; the broker redelivers it after a delay.
    Nacked,
    /// Being copied to the dead-letter station.
    DeadLettering,
    /// Acked or dead-lettered; committed with the prefix.
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry<M> {
    pub(crate) raw: M,
    pub(crate) key: Option<String>,
    pub(crate) state: State,
    pub(crate) deliveries: u64,
    /// The broker's delivery (consumer) sequence of its latest delivery.
    pub(crate) delivery: u64,
    pub(crate) last_error: Option<String>,
    /// Schema mismatch: dead-lettered in its turn, never handed over.
    pub(crate) invalid: Option<String>,
    /// When the broker last heard of it from here: its latest delivery, or
    /// the latest word that it is still being worked on (see [`Book::keep`]).
    pub(crate) kept: Instant,
}

/// The delivery sequence of a held message whose delivery the broker forgot
/// (see [`Book::forget_deliveries`]): above any it will use.
pub(crate) const FORGOTTEN: u64 = u64::MAX;

/// What became of a message the broker delivered.
#[derive(Debug)]
pub(crate) enum Admitted<M> {
    /// New here: held, and queued in its key's line.
    Held,
    /// Delivered again while held here.
    Redelivered,
    /// Committed here already (the broker forgot): acknowledge it again.
    Committed(M),
}

/// The messages of one partition held by this member.
#[derive(Debug)]
pub(crate) struct Book<M> {
    entries: BTreeMap<u64, Entry<M>>,
    /// Held entries delivered again after later ones were fetched: only
    /// while there are some can a commit point fall short of the prefix.
    redelivered: BTreeSet<u64>,
    keys: HashMap<String, VecDeque<u64>, Fast>,
    /// Messages that may run, in the order they became runnable.
    runnable: VecDeque<u64>,
    /// Highest committed stream sequence.
    committed: u64,
}

impl<M> Default for Book<M> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            redelivered: BTreeSet::new(),
            keys: HashMap::default(),
            runnable: VecDeque::new(),
            committed: 0,
        }
    }
}

impl<M: Clone> Book<M> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Highest committed stream sequence (0 before the first commit).
    pub(crate) fn committed(&self) -> u64 {
        self.committed
    }

    pub(crate) fn entry(&self, sequence: u64) -> Option<&Entry<M>> {
        self.entries.get(&sequence)
    }

    /// The latest delivery sequence of every held message.
    pub(crate) fn deliveries(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.values().map(|e| e.delivery)
    }

    /// Held by the application or being dead-lettered: cannot be handed over.
    pub(crate) fn busy(&self) -> bool {
        self.entries
            .values()
            .any(|e| matches!(e.state, State::InApp | State::DeadLettering))
    }

    pub(crate) fn dead_lettering(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.state == State::DeadLettering)
    }

    /// A message the broker delivered (`deliveries`: its delivery count).
    pub(crate) fn admit(
        &mut self,
        sequence: u64,
        delivery: u64,
        deliveries: u64,
        key: Option<String>,
        invalid: Option<String>,
        raw: M,
    ) -> Admitted<M> {
        if let Some(entry) = self.entries.get_mut(&sequence) {
            // A redelivery: the one awaited after a nack, or an ack-wait
            // expiry of a message that is waiting, running or finished here.
            // At least one more than before: after a consumer reset the
            // broker counts from 1 again.
            entry.raw = raw;
            entry.deliveries = deliveries.max(entry.deliveries + 1);
            entry.delivery = delivery;
            entry.kept = Instant::now();
            self.redelivered.insert(sequence);
            if entry.state == State::Nacked {
                entry.state = State::Runnable;
                self.runnable.push_back(sequence);
            }
            return Admitted::Redelivered;
        }
        if sequence <= self.committed {
            return Admitted::Committed(raw);
        }
        let mut state = State::Runnable;
        if let Some(k) = &key {
            // A key's line is in stream order, whatever the arrival order
            // (redeliveries after a handover can arrive out of order).
            // Looked up by reference first: most messages join a line that
            // exists, and the entry API would copy the key for each.
            let line = match self.keys.get_mut(k.as_str()) {
                Some(line) => line,
                None => self.keys.entry(k.clone()).or_default(),
            };
            let mut pos = line.partition_point(|s| *s < sequence);
            if pos == 0
                && let Some(head) = line.front().copied()
            {
                match self.entries.get_mut(&head) {
                    Some(e) if e.state == State::Runnable => e.state = State::Waiting,
                    // The head already runs: never run two of a key at once.
                    Some(_) => pos = 1,
                    None => {}
                }
            }
            line.insert(pos, sequence);
            if pos > 0 {
                state = State::Waiting;
            }
        }
        self.entries.insert(
            sequence,
            Entry {
                raw,
                key,
                state,
                deliveries,
                delivery,
                last_error: None,
                invalid,
                kept: Instant::now(),
            },
        );
        if state == State::Runnable {
            self.runnable.push_back(sequence);
        }
        Admitted::Held
    }

    /// The messages held here that the broker last heard of before `before`
    /// and that no handler is running: queued behind their key, queued for
    /// the application, or finished and not committed yet. The broker would
    /// deliver them again once `ack_wait` passed since their delivery; the
    /// caller tells it they are still being worked on, so they count as
    /// kept from `now`. A running handler's message is the application's to
    /// keep (`in_progress`), and a failed one waits for its redelivery.
    pub(crate) fn keep(&mut self, before: Instant, now: Instant) -> Vec<M> {
        self.entries
            .values_mut()
            .filter(|e| {
                e.kept < before && matches!(e.state, State::Waiting | State::Runnable | State::Done)
            })
            .map(|e| {
                e.kept = now;
                e.raw.clone()
            })
            .collect()
    }

    /// The next runnable message, in the order they became runnable.
    fn next_runnable(&mut self) -> Option<u64> {
        while let Some(sequence) = self.runnable.pop_front() {
            if self
                .entries
                .get(&sequence)
                .is_some_and(|e| e.state == State::Runnable)
            {
                return Some(sequence);
            }
        }
        None
    }

    /// Nothing more runs (closing); held messages stay held.
    pub(crate) fn stop_running(&mut self) {
        self.runnable.clear();
    }

    fn set(&mut self, sequence: u64, state: State) -> Option<&mut Entry<M>> {
        let entry = self.entries.get_mut(&sequence)?;
        entry.state = state;
        Some(entry)
    }

    /// Given back unprocessed: first in its key's line and runs next.
    fn release(&mut self, sequence: u64) {
        if self.set(sequence, State::Runnable).is_some() {
            self.runnable.push_front(sequence);
        }
    }

    /// Being copied to the dead-letter station, for `reason`.
    fn start_dead_letter(&mut self, sequence: u64, reason: &str) -> Option<(M, u64)> {
        let entry = self.set(sequence, State::DeadLettering)?;
        entry.last_error = Some(reason.to_string());
        Some((entry.raw.clone(), entry.deliveries))
    }

    /// Acked or dead-lettered: the next message of its key may run.
    pub(crate) fn finish(&mut self, sequence: u64) {
        let Some(entry) = self.set(sequence, State::Done) else {
            return;
        };
        if let Some(key) = entry.key.clone() {
            self.leave_line(&key, sequence);
        }
    }

    /// Takes `sequence` out of `key`'s line; when it was first, the next
    /// message of the key may run.
    fn leave_line(&mut self, key: &str, sequence: u64) {
        let Some(line) = self.keys.get_mut(key) else {
            return;
        };
        let was_head = line.front() == Some(&sequence);
        line.retain(|s| *s != sequence);
        match line.front().copied() {
            None => {
                self.keys.remove(key);
            }
            Some(next) if was_head => {
                if let Some(e) = self.entries.get_mut(&next)
                    && e.state == State::Waiting
                {
                    e.state = State::Runnable;
                    self.runnable.push_back(next);
                }
            }
            Some(_) => {}
        }
    }

    /// Removes the committable part of the finished prefix; returns its last
    /// sequence and the message whose acknowledgement commits it.
    pub(crate) fn commit_prefix(&mut self) -> Option<(u64, M)> {
        let (sequence, raw) = commit_prefix(&mut self.entries, Some(&mut self.redelivered))?;
        if sequence <= self.committed {
            // Finished here after another member committed past it: gone,
            // and nothing new to commit.
            return None;
        }
        self.committed = sequence;
        Some((sequence, raw))
    }

    /// Another member committed up to `floor`: forget what is below it.
    /// A message the application still holds (or that is being
    /// dead-lettered) stays until it is settled, so the next message of its
    /// key keeps waiting for it; the next message of a forgotten head may run.
    pub(crate) fn forget_through(&mut self, floor: u64) -> bool {
        if floor <= self.committed {
            return false;
        }
        let stale: Vec<u64> = self
            .entries
            .range(..=floor)
            .filter(|(_, e)| !matches!(e.state, State::InApp | State::DeadLettering))
            .map(|(s, _)| *s)
            .collect();
        for s in stale {
            self.redelivered.remove(&s);
            self.runnable.retain(|x| *x != s);
            if let Some(e) = self.entries.remove(&s)
                && let Some(k) = e.key
            {
                self.leave_line(&k, s);
            }
        }
        self.committed = floor;
        true
    }

    /// The broker forgot every delivery it made (the group's consumer was
    /// reset to its commit point): each held message comes again with a new
    /// delivery sequence. Until it does, it counts as not delivered (see
    /// [`super::sync`]) and is never the commit point, whose acknowledgement
    /// would name a delivery sequence from before the reset (the broker would
    /// take it as its new floor and ignore the commits after it).
    pub(crate) fn forget_deliveries(&mut self) {
        for (sequence, entry) in &mut self.entries {
            entry.delivery = FORGOTTEN;
            // The commit point is then chosen by delivery sequence.
            self.redelivered.insert(*sequence);
        }
    }

    /// Counts every held message at or below stream sequence `through` as
    /// delivered at least twice: delivered before a consumer reset, which
    /// made the broker count from 1 again (see [`super::reset`]).
    pub(crate) fn delivered_before(&mut self, through: u64) {
        for entry in self.entries.range_mut(..=through).map(|(_, e)| e) {
            entry.deliveries = entry.deliveries.max(2);
        }
    }

    /// Everything held, for handing the partition over; the book is empty after.
    pub(crate) fn take_all(&mut self) -> BTreeMap<u64, Entry<M>> {
        self.keys.clear();
        self.runnable.clear();
        self.redelivered.clear();
        std::mem::take(&mut self.entries)
    }
}

/// Removes the longest committable part of the finished prefix; returns its
/// last sequence and the message whose acknowledgement commits it.
///
/// With `AckPolicy::All` the broker ignores an acknowledgement whose delivery
/// sequence is not above the last acknowledged one. A message redelivered
/// after a nack has a higher delivery sequence than later messages fetched
/// before the redelivery; committing it first would leave those impossible to
/// acknowledge (and, uncommitted, redelivered after `ack_wait`). So the commit
/// point is the last finished message whose delivery sequence is below that
/// of every message held after it; the rest waits for a later commit.
///
/// `redelivered` (the partition's redelivered entries, `None` when unknown):
/// when it is empty, delivery sequences grow with stream sequences and the
/// whole finished prefix is committed without a scan.
pub(crate) fn commit_prefix<M>(
    entries: &mut BTreeMap<u64, Entry<M>>,
    redelivered: Option<&mut BTreeSet<u64>>,
) -> Option<(u64, M)> {
    let fast = redelivered.as_ref().is_some_and(|r| r.is_empty());
    let point = if fast {
        let mut last = None;
        for (sequence, e) in entries.iter() {
            if e.state != State::Done {
                break;
            }
            last = Some(*sequence);
        }
        last?
    } else {
        let done = entries
            .values()
            .take_while(|e| e.state == State::Done)
            .count();
        if done == 0 {
            return None;
        }
        // Iterator skip (not a skipped test): the smallest delivery sequence
        // among the entries after the finished prefix.
        let mut later_min = entries
            .values()
            .skip(done)
            .map(|e| e.delivery)
            .min()
            .unwrap_or(u64::MAX);
        let prefix: Vec<(u64, u64)> = entries
            .iter()
            .take(done)
            .map(|(s, e)| (*s, e.delivery))
            .collect();
        let mut point = None;
        for &(sequence, delivery) in prefix.iter().rev() {
            if delivery < later_min {
                point = Some(sequence);
                break;
            }
            later_min = later_min.min(delivery);
        }
        point?
    };
    if let Some(r) = redelivered {
        r.retain(|s| *s > point);
    }
    let mut last = None;
    while let Some(entry) = entries.first_entry() {
        if *entry.key() > point {
            break;
        }
        let (sequence, entry) = entry.remove_entry();
        last = Some((sequence, entry.raw));
    }
    last
}

/// How the application settled a message it held.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settle {
    Ack,
    Nack {
        delay: Option<Duration>,
        reason: String,
    },
    Term {
        reason: String,
    },
    Release,
}

/// What the scheduler must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Hand this message to the application.
    Deliver(Token),
    /// Tell the broker to deliver it again after `delay`.
    Nak { token: Token, delay: Duration },
    /// Copy it to the dead-letter station (then report `dead_lettered`).
    DeadLetter {
        token: Token,
        reason: String,
        deliveries: u64,
    },
    /// Its partition's finished prefix may be committed.
    Commit(u32),
}

/// Every partition's book, and what the application holds.
#[derive(Debug)]
pub(crate) struct Machine<M> {
    pub(crate) books: Vec<Book<M>>,
    in_app: HashSet<Token, Fast>,
    /// Acknowledged by the application, being written to the group's record
    /// (exactly once): their keys still wait, their places in `concurrency`
    /// are free.
    recording: HashSet<Token, Fast>,
    next_partition: usize,
    concurrency: usize,
    max_deliveries: u64,
    /// Closing: nothing more is handed out, a nack is never the last one.
    closing: bool,
    delays: RedeliveryDelays,
}

/// First and longest redelivery delay (doubling in between).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedeliveryDelays {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl RedeliveryDelays {
    /// Delay before redelivery after the `deliveries`-th delivery failed.
    pub(crate) fn after(&self, deliveries: u64) -> Duration {
        let exp = deliveries.saturating_sub(1).min(20) as u32;
        self.first.saturating_mul(1 << exp).min(self.max)
    }
}

impl<M: Clone> Machine<M> {
    pub(crate) fn new(
        partitions: usize,
        concurrency: usize,
        max_deliveries: u32,
        delays: RedeliveryDelays,
    ) -> Self {
        Self {
            books: (0..partitions).map(|_| Book::default()).collect(),
            in_app: HashSet::default(),
            recording: HashSet::default(),
            next_partition: 0,
            concurrency,
            max_deliveries: u64::from(max_deliveries),
            closing: false,
            delays,
        }
    }

    pub(crate) fn book(&mut self, partition: u32) -> &mut Book<M> {
        &mut self.books[partition as usize]
    }

    pub(crate) fn held_by_app(&self) -> usize {
        self.in_app.len() + self.recording.len()
    }

    /// Closing: nothing more runs; held messages stay until settled.
    pub(crate) fn close(&mut self) {
        self.closing = true;
        for book in &mut self.books {
            book.stop_running();
        }
    }

    /// Drops everything held of `partition` (given up after a stall, see
    /// `super::fence`): nothing of it runs or is settled here any more,
    /// and what the application still runs of it no longer counts against
    /// `concurrency`.
    pub(crate) fn give_up(&mut self, partition: u32) {
        self.books[partition as usize].take_all();
        self.in_app.retain(|t| t.partition != partition);
        self.recording.retain(|t| t.partition != partition);
    }

    /// Stops waiting for the application (a close that timed out).
    pub(crate) fn abandon_app(&mut self) {
        self.in_app.clear();
        self.recording.clear();
    }

    /// Hands runnable messages out (up to `concurrency` held at once), round
    /// robin over the partitions `open` allows (owned and in sync).
    pub(crate) fn dispatch(&mut self, open: impl Fn(u32) -> bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let n = self.books.len();
        while self.in_app.len() < self.concurrency && !self.closing {
            let mut next = None;
            for offset in 0..n {
                let index = (self.next_partition + offset) % n;
                if !open(index as u32) {
                    continue;
                }
                if let Some(sequence) = self.books[index].next_runnable() {
                    self.next_partition = (index + 1) % n;
                    next = Some(Token {
                        partition: index as u32,
                        sequence,
                    });
                    break;
                }
            }
            let Some(token) = next else {
                break;
            };
            let max = self.max_deliveries;
            let book = &mut self.books[token.partition as usize];
            let Some(entry) = book.entries.get(&token.sequence) else {
                continue;
            };
            if let Some(reason) = entry.invalid.clone() {
                actions.extend(self.dead_letter(token, reason));
                continue;
            }
            if entry.deliveries > max {
                // Delivered too often without being settled (ack-wait
                // expiries, crashes): do not run it again.
                let reason = entry.last_error.clone().unwrap_or_else(|| {
                    format!(
                        "not acknowledged after {} deliveries (ack_wait expired)",
                        entry.deliveries - 1
                    )
                });
                actions.extend(self.dead_letter(token, reason));
                continue;
            }
            book.set(token.sequence, State::InApp);
            self.in_app.insert(token);
            actions.push(Action::Deliver(token));
        }
        actions
    }

    /// Exactly once: the application acknowledged `token`, whose record is
    /// being written. Its key keeps waiting (it still counts as held), but it
    /// no longer takes a place in `concurrency`. Settled with `settle` once
    /// recorded. False when the application did not hold it.
    pub(crate) fn start_recording(&mut self, token: Token) -> bool {
        if !self.in_app.remove(&token) {
            return false;
        }
        self.recording.insert(token);
        true
    }

    /// The application settled a message it held (others are ignored).
    pub(crate) fn settle(&mut self, token: Token, settle: Settle) -> Vec<Action> {
        if !self.in_app.remove(&token) && !self.recording.remove(&token) {
            return Vec::new();
        }
        let (max, closing, delays) = (self.max_deliveries, self.closing, self.delays);
        let book = &mut self.books[token.partition as usize];
        let Some(entry) = book.entries.get_mut(&token.sequence) else {
            return Vec::new();
        };
        match settle {
            Settle::Ack => {
                book.finish(token.sequence);
                vec![Action::Commit(token.partition)]
            }
            Settle::Term { reason } => self.dead_letter(token, reason),
            Settle::Nack { delay, reason } => {
                entry.last_error = Some(reason.clone());
                if entry.deliveries >= max && !closing {
                    return self.dead_letter(token, reason);
                }
                let delay = if closing {
                    Duration::ZERO
                } else {
                    delay.unwrap_or_else(|| delays.after(entry.deliveries))
                };
                entry.state = State::Nacked;
                vec![Action::Nak { token, delay }]
            }
            Settle::Release if !closing => {
                book.release(token.sequence);
                Vec::new()
            }
            // Leaving: back to the broker at once (it counts the delivery,
            // as it must: the message leaves this member).
            Settle::Release => {
                entry.state = State::Nacked;
                vec![Action::Nak {
                    token,
                    delay: Duration::ZERO,
                }]
            }
        }
    }

    /// Starts copying a message to the dead-letter station.
    pub(crate) fn dead_letter(&mut self, token: Token, reason: String) -> Vec<Action> {
        let book = &mut self.books[token.partition as usize];
        match book.start_dead_letter(token.sequence, &reason) {
            Some((_, deliveries)) => vec![Action::DeadLetter {
                token,
                reason,
                deliveries,
            }],
            None => Vec::new(),
        }
    }

    /// The dead letter was stored: the message counts as finished.
    pub(crate) fn dead_lettered(&mut self, token: Token) -> Vec<Action> {
        let book = &mut self.books[token.partition as usize];
        if book
            .entries
            .get(&token.sequence)
            .is_none_or(|e| e.state != State::DeadLettering)
        {
            return Vec::new();
        }
        book.finish(token.sequence);
        vec![Action::Commit(token.partition)]
    }
}

#[cfg(test)]
mod tests {
    //! Property tests: random sequences of deliveries, redeliveries,
    //! hand-outs, settlements and commits, with the rules checked after
    //! every step against an independent record of what happened.

    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// The broker delivers the next message of the stream (key index).
        Deliver(u8),
        /// The broker redelivers a held message (index into what is held).
        Redeliver(usize),
        /// The application settles a message it holds.
        Settle(usize, u8),
        /// A dead letter is stored.
        Stored(usize),
        Commit,
        /// Another member committed up to a point (a fraction of the stream).
        Forget(u8),
        /// The group's consumer is reset to its commit point.
        Reset,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..4).prop_map(Step::Deliver),
            1 => any::<usize>().prop_map(Step::Redeliver),
            4 => (any::<usize>(), 0u8..5).prop_map(|(i, s)| Step::Settle(i, s)),
            1 => any::<usize>().prop_map(Step::Stored),
            2 => Just(Step::Commit),
            1 => (0u8..=100).prop_map(Step::Forget),
            1 => Just(Step::Reset),
        ]
    }

    /// Runs `steps` on one partition with `concurrency`, checking the rules.
    fn run(steps: Vec<Step>, concurrency: usize) -> Result<(), TestCaseError> {
        let delays = RedeliveryDelays {
            first: Duration::from_millis(1),
            max: Duration::from_millis(8),
        };
        // Each message carries (stream sequence, delivery sequence) as what
        // the scheduler would keep with it.
        let mut m: Machine<(u64, u64)> = Machine::new(1, concurrency, 3, delays);
        let mut next_seq = 0u64;
        let mut next_delivery = 0u64;
        // Independent record: every message's key, what the app holds, what
        // is finished, what is committed, and the order each key ran in.
        let mut key_of: BTreeMap<u64, Option<String>> = BTreeMap::new();
        let mut in_app: Vec<Token> = Vec::new();
        let mut finished: BTreeSet<u64> = BTreeSet::new();
        let mut dead_lettering: Vec<Token> = Vec::new();
        let mut committed = 0u64;
        let mut ran: HashMap<String, Vec<u64>> = HashMap::new();
        // The last delivery made before the latest reset.
        let mut reset_after = 0u64;

        let apply = |actions: Vec<Action>,
                     in_app: &mut Vec<Token>,
                     dead_lettering: &mut Vec<Token>,
                     ran: &mut HashMap<String, Vec<u64>>,
                     key_of: &BTreeMap<u64, Option<String>>,
                     finished: &BTreeSet<u64>|
         -> Result<(), TestCaseError> {
            for action in actions {
                match action {
                    Action::Deliver(token) => {
                        let key = key_of[&token.sequence].clone();
                        if let Some(k) = &key {
                            // Per-key order: every earlier message of the
                            // key is finished, and none of the key runs.
                            for (s, kk) in key_of.range(..token.sequence) {
                                if kk.as_ref() == Some(k) {
                                    prop_assert!(
                                        finished.contains(s),
                                        "{} ran before {} of key {} finished",
                                        token.sequence,
                                        s,
                                        k
                                    );
                                }
                            }
                            prop_assert!(
                                !in_app
                                    .iter()
                                    .any(|t| key_of[&t.sequence].as_ref() == Some(k)),
                                "two messages of key {} held at once",
                                k
                            );
                            ran.entry(k.clone()).or_default().push(token.sequence);
                        }
                        in_app.push(token);
                    }
                    Action::DeadLetter { token, .. } => dead_lettering.push(token),
                    Action::Nak { .. } | Action::Commit(_) => {}
                }
            }
            Ok(())
        };

        for step in steps {
            match step {
                Step::Deliver(k) => {
                    next_seq += 1;
                    next_delivery += 1;
                    let key = (k > 0).then(|| format!("k{k}"));
                    key_of.insert(next_seq, key.clone());
                    m.book(0).admit(
                        next_seq,
                        next_delivery,
                        1,
                        key,
                        None,
                        (next_seq, next_delivery),
                    );
                }
                Step::Redeliver(i) => {
                    let held: Vec<u64> = m.books[0].entries.keys().copied().collect();
                    if !held.is_empty() {
                        let s = held[i % held.len()];
                        let deliveries = m.books[0].entries[&s].deliveries + 1;
                        next_delivery += 1;
                        m.book(0).admit(
                            s,
                            next_delivery,
                            deliveries,
                            None,
                            None,
                            (s, next_delivery),
                        );
                    }
                }
                Step::Settle(i, how) => {
                    if !in_app.is_empty() {
                        let token = in_app.remove(i % in_app.len());
                        let before = m.books[0].entries[&token.sequence].clone();
                        let settle = match how {
                            0 | 1 => Settle::Ack,
                            2 => Settle::Nack {
                                delay: None,
                                reason: "no".into(),
                            },
                            3 => Settle::Term {
                                reason: "never".into(),
                            },
                            _ => Settle::Release,
                        };
                        let release = settle == Settle::Release;
                        let ack = settle == Settle::Ack;
                        let actions = m.settle(token, settle);
                        if ack {
                            finished.insert(token.sequence);
                        }
                        if release {
                            // A release gives back exactly what was held:
                            // the same message, its delivery count unchanged,
                            // runnable and first in line.
                            let after = &m.books[0].entries[&token.sequence];
                            prop_assert_eq!(after.state, State::Runnable);
                            prop_assert_eq!(after.deliveries, before.deliveries);
                            prop_assert_eq!(after.delivery, before.delivery);
                            prop_assert_eq!(m.books[0].runnable.front(), Some(&token.sequence));
                            prop_assert!(actions.is_empty());
                        }
                        apply(
                            actions,
                            &mut in_app,
                            &mut dead_lettering,
                            &mut ran,
                            &key_of,
                            &finished,
                        )?;
                    }
                }
                Step::Stored(i) => {
                    if !dead_lettering.is_empty() {
                        let token = dead_lettering.remove(i % dead_lettering.len());
                        finished.insert(token.sequence);
                        let actions = m.dead_lettered(token);
                        apply(
                            actions,
                            &mut in_app,
                            &mut dead_lettering,
                            &mut ran,
                            &key_of,
                            &finished,
                        )?;
                    }
                }
                Step::Forget(percent) => {
                    let floor = next_seq * u64::from(percent) / 100;
                    if floor > committed {
                        // Finished elsewhere: they count as done for their keys.
                        let held: Vec<u64> = in_app.iter().map(|t| t.sequence).collect();
                        for s in 1..=floor {
                            if !held.contains(&s) && !dead_lettering.iter().any(|t| t.sequence == s)
                            {
                                finished.insert(s);
                            }
                        }
                        m.book(0).forget_through(floor);
                        committed = floor;
                    }
                }
                Step::Reset => {
                    m.book(0).forget_deliveries();
                    reset_after = next_delivery;
                }
                Step::Commit => {
                    if let Some((point, (raw_seq, delivery))) = m.book(0).commit_prefix() {
                        prop_assert_eq!(point, raw_seq);
                        prop_assert!(
                            delivery > reset_after,
                            "commit with delivery {} from before the reset",
                            delivery
                        );
                        // The broker acknowledges every pending delivery up
                        // to the committing one's: none may be held still.
                        for later in m.books[0].deliveries() {
                            prop_assert!(
                                later > delivery,
                                "commit at delivery {} also acks held delivery {}",
                                delivery,
                                later
                            );
                        }
                        // A commit never passes an unfinished message.
                        for s in (committed + 1)..=point {
                            prop_assert!(
                                finished.contains(&s),
                                "commit to {} passes unfinished {}",
                                point,
                                s
                            );
                        }
                        prop_assert!(point > committed);
                        committed = point;
                    }
                }
            }
            let actions = m.dispatch(|_| true);
            apply(
                actions,
                &mut in_app,
                &mut dead_lettering,
                &mut ran,
                &key_of,
                &finished,
            )?;
            // At most `concurrency` messages held by the application.
            prop_assert!(m.held_by_app() <= concurrency);
            prop_assert_eq!(m.held_by_app(), in_app.len());
        }
        // Each key ran in stream order (a message may run again after a nack).
        for (key, order) in &ran {
            let mut firsts: Vec<u64> = Vec::new();
            for s in order {
                if !firsts.contains(s) {
                    firsts.push(*s);
                }
            }
            let mut sorted = firsts.clone();
            sorted.sort();
            prop_assert_eq!(&firsts, &sorted, "key {} ran out of order", key);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn rules_hold_over_random_event_sequences(
            steps in proptest::collection::vec(step(), 1..120),
            concurrency in 1usize..5,
        ) {
            run(steps, concurrency)?;
        }
    }

    #[test]
    fn a_nacked_message_redelivered_out_of_order_is_committed_after_the_later_ones() {
        // 1 and 2 fetched; 1 nacked and redelivered after 2: committing 1
        // first would make 2's acknowledgement impossible.
        let delays = RedeliveryDelays {
            first: Duration::ZERO,
            max: Duration::ZERO,
        };
        let mut m: Machine<u64> = Machine::new(1, 2, 5, delays);
        m.book(0).admit(1, 1, 1, None, None, 1);
        m.book(0).admit(2, 2, 1, None, None, 2);
        let t1 = Token {
            partition: 0,
            sequence: 1,
        };
        let t2 = Token {
            partition: 0,
            sequence: 2,
        };
        assert_eq!(m.dispatch(|_| true).len(), 2);
        m.settle(
            t1,
            Settle::Nack {
                delay: None,
                reason: "x".into(),
            },
        );
        m.book(0).admit(1, 3, 2, None, None, 1);
        assert_eq!(m.dispatch(|_| true), vec![Action::Deliver(t1)]);
        m.settle(t1, Settle::Ack);
        assert_eq!(
            m.book(0).commit_prefix(),
            None,
            "1 (delivery 3) cannot go before 2 (delivery 2)"
        );
        m.settle(t2, Settle::Ack);
        assert_eq!(m.book(0).commit_prefix(), Some((2, 2)));
    }

    #[test]
    fn a_message_held_across_a_reset_is_committed_once_delivered_again() {
        let delays = RedeliveryDelays {
            first: Duration::ZERO,
            max: Duration::ZERO,
        };
        let mut m: Machine<u64> = Machine::new(1, 2, 5, delays);
        m.book(0).admit(1, 41, 1, None, None, 41);
        m.book(0).admit(2, 42, 1, None, None, 42);
        for t in m.dispatch(|_| true) {
            let Action::Deliver(token) = t else {
                panic!("{t:?}")
            };
            m.settle(token, Settle::Ack);
        }
        m.book(0).forget_deliveries();
        assert_eq!(m.book(0).commit_prefix(), None, "41 and 42 are forgotten");
        assert!(m.books[0].deliveries().all(|d| d == FORGOTTEN));
        // Delivered again after the reset, as 1 and 2.
        m.book(0).admit(1, 1, 1, None, None, 1);
        assert_eq!(m.book(0).commit_prefix(), Some((1, 1)));
        m.book(0).admit(2, 2, 1, None, None, 2);
        assert_eq!(m.book(0).commit_prefix(), Some((2, 2)));
        // The broker counts them as first deliveries; they are second ones.
        assert!(m.books[0].entries.values().all(|e| e.deliveries == 2));
    }

    #[test]
    fn a_delivery_count_that_starts_again_only_grows() {
        let mut book: Book<u64> = Book::default();
        book.admit(7, 1, 3, None, None, 1);
        // After a reset the broker counts from 1 again.
        book.admit(7, 1, 1, None, None, 1);
        assert_eq!(book.entries[&7].deliveries, 4);
        book.admit(7, 2, 2, None, None, 2);
        assert_eq!(book.entries[&7].deliveries, 5);
        // Held messages delivered before another member's reset.
        book.admit(8, 3, 1, None, None, 3);
        book.admit(9, 4, 1, None, None, 4);
        book.delivered_before(8);
        assert_eq!(book.entries[&8].deliveries, 2);
        assert_eq!(book.entries[&9].deliveries, 1);
        book.delivered_before(8);
        assert_eq!(book.entries[&8].deliveries, 2, "counted once");
    }
}
