//! Who is in a consumer group, and which partitions each member takes.
//!
//! Members announce themselves in a small JetStream key-value bucket
//! (`jst_members[_<namespace>]`, key `<station>.<group>.<member id>`) every
//! `handover_timeout / 4`. A member is live while its last announcement is
//! younger than `handover_timeout`, measured against the broker's timestamp of
//! our own latest announcement (so host clocks do not matter).
//!
//! An announcement also names the partitions whose deliveries the member may
//! hold (`holds=0,3`: owned, being handed over, or with messages in hand).
//! The member that takes a partition reads it to know that no live member
//! holds what the broker counts as delivered there (see [`Live::holds`]).
//!
//! A member back from a stall that cost it partitions announces itself as
//! standing by (`standby`) for a while (see the scheduler's `give_up`):
//! live, so its `holds` count, but left out of the assignment while another
//! member is not, so that the partitions it lost stay with the member that
//! took them until that one has caught up and committed.
//!
//! Every member computes the same assignment from the same live set with
//! capped rendezvous hashing (see [`assignment`]): balanced, and a member
//! joining or leaving moves few partitions. The
//! assignment decides which partitions a member *pulls*; the broker's pinned
//! client policy makes sure a partition is never delivered to two members at
//! once while the assignment changes hands.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use time::OffsetDateTime;

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
};

/// How long a joining member waits for a new membership bucket to be
/// reachable from its server.
const JOIN_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct Membership {
    store: kv::Store,
    prefix: String,
    member: String,
    ttl: Duration,
    /// What the next announcement says, kept up to date by the scheduler.
    said: Arc<Mutex<Said>>,
}

/// What a member's announcements say besides that it is live.
#[derive(Debug, Default)]
struct Said {
    /// The partitions this member may hold deliveries of (`0,3`).
    holds: String,
    /// Until when this member stands by.
    standby_until: Option<tokio::time::Instant>,
}

/// The live members, as their latest announcements read.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// The members the partitions are assigned to, sorted: those not
    /// standing by, or all of them when all are (this member included
    /// either way when it does not stand by).
    pub(crate) members: Vec<String>,
    /// The broker's time of this member's latest announcement.
    pub(crate) at: OffsetDateTime,
    /// Every other live member's latest announcement: when the broker
    /// stored it, and the partitions it said it holds (`None`: it did not
    /// say, as a member of an older version).
    pub(crate) others: Vec<(String, OffsetDateTime, Option<Vec<u32>>)>,
}

impl Live {
    /// Whether a live member other than this one may hold deliveries of
    /// `partition` after `since`: yes unless every other member announced
    /// after `since` that it holds none.
    pub(crate) fn holds(&self, partition: u32, since: OffsetDateTime) -> bool {
        self.others.iter().any(|(_, at, holds)| {
            *at <= since || holds.as_ref().is_none_or(|h| h.contains(&partition))
        })
    }
}

impl Membership {
    pub(crate) async fn join(
        client: &Client,
        station: &str,
        group: &str,
        ttl: Duration,
    ) -> Result<Self> {
        let bucket = match client.inner.names.namespace() {
            Some(ns) => format!("jst_members_{ns}"),
            None => "jst_members".to_string(),
        };
        let js = &client.inner.js;
        let store = match js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => {
                let created = client
                    .create_replicated(|replicas| {
                        js.create_key_value(kv::Config {
                            bucket: bucket.clone(),
                            description: "jetstation consumer group members".into(),
                            history: 1,
                            // Old announcements are garbage; liveness is decided by age.
                            max_age: Duration::from_secs(3600),
                            storage: jetstream::stream::StorageType::Memory,
                            num_replicas: replicas,
                            ..Default::default()
                        })
                    })
                    .await;
                match created {
                    Ok(store) => store,
                    // Another member created it first.
                    Err(create) => js.get_key_value(&bucket).await.map_err(|_| {
                        Error::from_nats("creating the group membership bucket", &create)
                    })?,
                }
            }
        };
        let this = Self {
            store,
            prefix: format!("{station}.{group}."),
            member: nuid::next().to_string(),
            ttl,
            said: Arc::default(),
        };
        // A bucket made a moment ago (here or by another member) may not be
        // reachable from this server yet: on a cluster the interest in its
        // subjects reaches the other nodes on its own, and a put before that
        // finds no stream. It is there, so try again for a while.
        let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
        let mut pause = Duration::from_millis(20);
        loop {
            match this.announce().await {
                Ok(()) => return Ok(this),
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        && tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %e, "the membership bucket is not reachable yet");
                    // Nothing to wait on: the interest arrives unannounced.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn member(&self) -> &str {
        &self.member
    }

    /// The partitions this member may hold deliveries of, from its next
    /// announcement on.
    pub(crate) fn set_holds(&self, partitions: impl Iterator<Item = u32>) {
        let list: Vec<String> = partitions.map(|p| p.to_string()).collect();
        self.said.lock().unwrap_or_else(|e| e.into_inner()).holds = list.join(",");
    }

    /// Announces this member as standing by for `time` from now.
    pub(crate) fn stand_by(&self, time: Duration) {
        let until = tokio::time::Instant::now() + time;
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        said.standby_until = Some(said.standby_until.map_or(until, |u| u.max(until)));
    }

    pub(crate) async fn announce(&self) -> Result<()> {
        // The value says how long the announcement counts (for observers:
        // the members themselves use their own handover timeout), which
        // partitions this member may hold deliveries of, and whether it
        // stands by.
        let value = {
            let said = self.said.lock().unwrap_or_else(|e| e.into_inner());
            let standby = said
                .standby_until
                .is_some_and(|until| tokio::time::Instant::now() < until);
            format!(
                "live ttl_ms={} holds={}{}",
                self.ttl.as_millis(),
                said.holds,
                if standby { " standby" } else { "" }
            )
        };
        self.store
            .put(format!("{}{}", self.prefix, self.member), value.into())
            .await
            .map(|_| ())
            .map_err(|e| Error::from_nats("announcing a group member", &e))
    }

    /// The live members and what they announced.
    pub(crate) async fn live(&self) -> Result<Live> {
        let err =
            |e: &(dyn std::error::Error + 'static)| Error::from_nats("reading group members", e);
        let own = self
            .store
            .entry(format!("{}{}", self.prefix, self.member))
            .await
            .map_err(|e| err(&e))?;
        let Some(own) = own else {
            return Ok(Live {
                members: vec![self.member.clone()],
                at: OffsetDateTime::now_utc(),
                others: Vec::new(),
            });
        };
        let now = own.created;
        // The bucket's subjects name the keys. Listing them from the stream's
        // info creates no consumer (the KV `keys()` listing does, one per
        // call, and a member calls this every few seconds).
        let filter = format!("{}{}>", self.store.prefix, self.prefix);
        let subjects: Vec<(String, usize)> = self
            .store
            .stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| err(&e))?
            .try_collect()
            .await
            .map_err(|e| err(&e))?;
        let keys: Vec<String> = subjects
            .into_iter()
            .filter_map(|(subject, _)| subject.strip_prefix(&self.store.prefix).map(String::from))
            .collect();
        let mut live = Vec::new();
        let mut others = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(&self.prefix)) {
            if let Ok(Some(entry)) = self.store.entry(key.clone()).await {
                let age = now - entry.created;
                if entry.operation == kv::Operation::Put && age < self.ttl {
                    let member = key[self.prefix.len()..].to_string();
                    if member != self.member {
                        others.push((member.clone(), entry.created, announced_holds(&entry.value)));
                    }
                    live.push((member, standing_by(&entry.value)));
                }
            }
        }
        if !live.iter().any(|(m, _)| *m == self.member) {
            live.push((self.member.clone(), standing_by(&own.value)));
        }
        Ok(Live {
            members: assigned(live),
            at: now,
            others,
        })
    }

    pub(crate) async fn leave(&self) {
        let _ = self
            .store
            .delete(format!("{}{}", self.prefix, self.member))
            .await;
    }
}

/// How long an announcement counts, from its value (`live ttl_ms=<n>`);
/// ten seconds (the default handover timeout) when it does not say.
pub(crate) fn member_ttl(value: &[u8]) -> Duration {
    announced(value, "ttl_ms=")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// The partitions an announcement says its member may hold deliveries of
/// (`holds=0,3`; `None` when it does not say).
fn announced_holds(value: &[u8]) -> Option<Vec<u32>> {
    let list = announced(value, "holds=")?;
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect()
}

/// Whether an announcement says its member stands by.
pub(crate) fn standing_by(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|text| text.split_whitespace().any(|w| w == "standby"))
}

/// The members partitions are assigned to, sorted, from the live ones and
/// whether each stands by: those that do not, or all when all do (a group
/// whose every member stalled goes on).
pub(crate) fn assigned(live: Vec<(String, bool)>) -> Vec<String> {
    let all_stand_by = live.iter().all(|(_, standby)| *standby);
    let mut members: Vec<String> = live
        .into_iter()
        .filter(|(_, standby)| all_stand_by || !standby)
        .map(|(m, _)| m)
        .collect();
    members.sort();
    members
}

/// The word after `name` in an announcement (`live ttl_ms=2000 holds=0,3`).
fn announced<'a>(value: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(value).ok()?;
    let rest = text.split_once(name)?.1;
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// Which member takes each partition: rendezvous hashing with a cap, so the
/// split is balanced (every member gets ⌊P/n⌋ or ⌈P/n⌉ partitions) and a
/// member joining or leaving moves few partitions. Deterministic: every member
/// computes the same answer from the same (sorted) member list.
pub(crate) fn assignment(members: &[String], partitions: u32) -> Vec<usize> {
    if members.is_empty() {
        return Vec::new();
    }
    // Loads end at ⌊P/n⌋ or ⌊P/n⌋+1: `extra` members may take one more.
    let floor = partitions as usize / members.len();
    let mut extra = partitions as usize % members.len();
    let mut load = vec![0usize; members.len()];
    (0..partitions)
        .map(|p| {
            let score = |m: &str| xxhash_rust::xxh3::xxh3_64(format!("{m}:{p}").as_bytes());
            let mut ranked: Vec<usize> = (0..members.len()).collect();
            ranked.sort_by_key(|&i| (std::cmp::Reverse(score(&members[i])), i));
            let chosen = ranked
                .into_iter()
                .find(|&i| load[i] < floor || (load[i] == floor && extra > 0))
                .expect("capacity always equals the partitions left");
            if load[chosen] == floor {
                extra -= 1;
            }
            load[chosen] += 1;
            chosen
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back() {
        let value = b"live ttl_ms=2000 holds=0,3";
        assert_eq!(member_ttl(value), Duration::from_millis(2000));
        assert_eq!(announced_holds(value), Some(vec![0, 3]));
        assert_eq!(announced_holds(b"live ttl_ms=2000 holds="), Some(vec![]));
        // An older member says nothing about what it holds.
        assert_eq!(member_ttl(b"live ttl_ms=2500"), Duration::from_millis(2500));
        assert_eq!(announced_holds(b"live ttl_ms=2500"), None);
        assert_eq!(announced_holds(b"live holds=1,x"), None);
    }

    #[test]
    fn only_fresh_announcements_that_name_nothing_clear_a_partition() {
        let t = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        let live = |others| Live {
            members: Vec::new(),
            at: t(100),
            others,
        };
        let taken = t(50);
        // Nobody else is live.
        assert!(!live(vec![]).holds(2, taken));
        // Announced after the take, holding other partitions only.
        assert!(!live(vec![("b".into(), t(60), Some(vec![0, 1]))]).holds(2, taken));
        // Holding it, announced before the take, or not saying.
        assert!(live(vec![("b".into(), t(60), Some(vec![2]))]).holds(2, taken));
        assert!(live(vec![("b".into(), t(40), Some(vec![]))]).holds(2, taken));
        assert!(live(vec![("b".into(), t(60), None)]).holds(2, taken));
    }

    #[test]
    fn members_standing_by_get_nothing_unless_all_do() {
        assert!(standing_by(b"live ttl_ms=2000 holds= standby"));
        assert!(!standing_by(b"live ttl_ms=2000 holds=0,3"));
        let live = |list: &[(&str, bool)]| {
            list.iter()
                .map(|(m, s)| (m.to_string(), *s))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            assigned(live(&[("c", false), ("a", true), ("b", false)])),
            members(&["b", "c"])
        );
        assert_eq!(
            assigned(live(&[("b", true), ("a", true)])),
            members(&["a", "b"])
        );
    }

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_split_is_balanced() {
        for n in 1..=5 {
            for partitions in [1u32, 2, 4, 7, 16, 64] {
                for salt in 0..20 {
                    let m: Vec<String> = (0..n).map(|i| format!("m{salt}-{i}")).collect();
                    let a = assignment(&m, partitions);
                    let mut load = vec![0; n];
                    for owner in a {
                        load[owner] += 1;
                    }
                    let (lo, hi) = (partitions as usize / n, (partitions as usize).div_ceil(n));
                    assert!(load.iter().all(|l| *l >= lo && *l <= hi), "{load:?}");
                    assert_eq!(load.iter().sum::<usize>(), partitions as usize);
                }
            }
        }
    }

    #[test]
    fn a_join_moves_only_some_partitions() {
        let two = members(&["a", "b"]);
        let three = members(&["a", "b", "c"]);
        let before = assignment(&two, 64);
        let after = assignment(&three, 64);
        let moved = (0..64)
            .filter(|&p| two[before[p]] != three[after[p]])
            .count();
        assert!(moved < 40, "{moved} of 64 moved");
        assert_eq!(assignment(&members(&["solo"]), 3), vec![0, 0, 0]);
    }
}
