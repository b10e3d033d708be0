//! Who is in a consumer group, and which partitions each member takes.
//!
//! Members announce themselves in a small JetStream key-value bucket
//! (`jst_members[_<namespace>]`, key `<station>.<group>.<member id>`) every
//! `handover_timeout / 4`. A member is live while its last announcement is
//! younger than `handover_timeout`, measured against the broker's timestamp of
//! our own latest announcement (so host clocks do not matter).
//!
//! Every member computes the same assignment from the same live set with
//! rendezvous hashing (highest xxh3 of `member:partition` wins), so a member
//! joining or leaving moves only the partitions it takes or leaves. The
//! assignment decides which partitions a member *pulls*; the broker's pinned
//! client policy makes sure a partition is never delivered to two members at
//! once while the assignment changes hands.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;

use crate::{
    client::Client,
    error::{Error, Result},
};

#[derive(Debug, Clone)]
pub(crate) struct Membership {
    store: kv::Store,
    prefix: String,
    member: String,
    ttl: Duration,
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
                let config = kv::Config {
                    bucket: bucket.clone(),
                    description: "jetstation consumer group members".into(),
                    history: 1,
                    // Old announcements are garbage; liveness is decided by age.
                    max_age: Duration::from_secs(3600),
                    storage: jetstream::stream::StorageType::Memory,
                    ..Default::default()
                };
                match js.create_key_value(config).await {
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
        };
        this.announce().await?;
        Ok(this)
    }

    pub(crate) fn member(&self) -> &str {
        &self.member
    }

    pub(crate) async fn announce(&self) -> Result<()> {
        self.store
            .put(format!("{}{}", self.prefix, self.member), "live".into())
            .await
            .map(|_| ())
            .map_err(|e| Error::from_nats("announcing a group member", &e))
    }

    /// Live members (sorted), this one included.
    pub(crate) async fn live(&self) -> Result<Vec<String>> {
        let err =
            |e: &(dyn std::error::Error + 'static)| Error::from_nats("reading group members", e);
        let own = self
            .store
            .entry(format!("{}{}", self.prefix, self.member))
            .await
            .map_err(|e| err(&e))?;
        let Some(own) = own else {
            return Ok(vec![self.member.clone()]);
        };
        let now = own.created;
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| err(&e))?
            .try_collect()
            .await
            .map_err(|e| err(&e))?;
        let mut live = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(&self.prefix)) {
            if let Ok(Some(entry)) = self.store.entry(key.clone()).await {
                let age = now - entry.created;
                if entry.operation == kv::Operation::Put && age < self.ttl {
                    live.push(key[self.prefix.len()..].to_string());
                }
            }
        }
        if !live.contains(&self.member) {
            live.push(self.member.clone());
        }
        live.sort();
        Ok(live)
    }

    pub(crate) async fn leave(&self) {
        let _ = self
            .store
            .delete(format!("{}{}", self.prefix, self.member))
            .await;
    }
}

/// Whether `member` takes `partition` among `members` (rendezvous hashing).
pub(crate) fn owns(member: &str, partition: u32, members: &[String]) -> bool {
    let score = |m: &str| xxhash_rust::xxh3::xxh3_64(format!("{m}:{partition}").as_bytes());
    members
        .iter()
        .max_by_key(|m| (score(m), (*m).clone()))
        .is_none_or(|winner| winner == member)
}

#[cfg(test)]
mod tests {
    use super::owns;

    #[test]
    fn every_partition_has_exactly_one_owner_and_joins_move_few() {
        let two: Vec<String> = vec!["a".into(), "b".into()];
        let three: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let mut moved = 0;
        for p in 0..64 {
            let owners2: Vec<&String> = two.iter().filter(|m| owns(m, p, &two)).collect();
            let owners3: Vec<&String> = three.iter().filter(|m| owns(m, p, &three)).collect();
            assert_eq!(owners2.len(), 1);
            assert_eq!(owners3.len(), 1);
            if owners2[0] != owners3[0] {
                // Only partitions taken by the newcomer move.
                assert_eq!(owners3[0], "c");
                moved += 1;
            }
        }
        assert!(moved > 5 && moved < 40, "{moved}");
        assert!(owns("solo", 3, &["solo".to_string()]));
    }
}
