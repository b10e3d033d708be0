//! Where schemas live: a JetStream key-value bucket (`jst_schemas[_<ns>]`),
//! replicated with the cluster and shared by every client.
//!
//! | key                       | value                                          |
//! |---------------------------|------------------------------------------------|
//! | `meta.<name>`             | format, compatibility mode, versions, latest    |
//! | `version.<name>.<n>`      | one immutable version (source, message type)    |
//!
//! A new version is created with a `create` of its version key (only one
//! client can win a number) followed by a compare-and-set update of the meta
//! key, so concurrent registrations never lose or reuse a version.
//!
//! Compiled validators are cached per (name, version) — versions are
//! immutable — and each client keeps the latest version of every schema it
//! uses up to date with a KV watch on `meta.>`, so a version registered by
//! another client is used within milliseconds.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, Weak},
};

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{Compatibility, SchemaDefinition, SchemaFormat, SchemaVersion, validator::Compiled};
use crate::{
    client::Client,
    error::{Error, Result},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) format: SchemaFormat,
    pub(crate) compatibility: Compatibility,
    pub(crate) versions: Vec<u32>,
    pub(crate) next_version: u32,
}

impl Meta {
    pub(crate) fn latest(&self) -> Option<u32> {
        self.versions.iter().max().copied()
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    bucket: String,
    store: OnceCell<kv::Store>,
    compiled: RwLock<HashMap<(String, u32), Arc<Compiled>>>,
    latest: Arc<RwLock<HashMap<String, u32>>>,
    watch: OnceCell<()>,
}

pub(crate) fn meta_key(name: &str) -> String {
    format!("meta.{name}")
}

pub(crate) fn version_key(name: &str, version: u32) -> String {
    format!("version.{name}.{version}")
}

fn registry_error(context: &str, e: impl std::error::Error + 'static) -> Error {
    Error::from_nats(&format!("schema registry: {context}"), &e)
}

impl Registry {
    pub(crate) fn new(namespace: Option<&str>) -> Self {
        Self {
            bucket: match namespace {
                Some(ns) => format!("jst_schemas_{ns}"),
                None => "jst_schemas".to_string(),
            },
            store: OnceCell::new(),
            compiled: RwLock::default(),
            latest: Arc::default(),
            watch: OnceCell::new(),
        }
    }

    pub(crate) async fn store(&self, client: &Client) -> Result<&kv::Store> {
        let js = &client.inner.js;
        self.store
            .get_or_try_init(|| async {
                if let Ok(store) = js.get_key_value(&self.bucket).await {
                    return Ok(store);
                }
                let created = client
                    .create_replicated(|replicas| {
                        js.create_key_value(kv::Config {
                            bucket: self.bucket.clone(),
                            description: "jetstation schema registry".into(),
                            history: 1,
                            num_replicas: replicas,
                            ..Default::default()
                        })
                    })
                    .await;
                match created {
                    Ok(store) => Ok(store),
                    // Another client created it first.
                    Err(create) => js
                        .get_key_value(&self.bucket)
                        .await
                        .map_err(|_| registry_error("creating the bucket", create)),
                }
            })
            .await
    }

    pub(crate) async fn meta(&self, client: &Client, name: &str) -> Result<Option<(Meta, u64)>> {
        let store = self.store(client).await?;
        let entry = store
            .entry(meta_key(name))
            .await
            .map_err(|e| registry_error("reading a schema", e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let meta: Meta = serde_json::from_slice(&e.value).map_err(|e| {
                    Error::invalid(format!("schema registry entry is corrupt: {e}"))
                })?;
                Ok(Some((meta, e.revision)))
            }
            _ => Ok(None),
        }
    }

    pub(crate) async fn version(
        &self,
        client: &Client,
        name: &str,
        version: u32,
    ) -> Result<Option<SchemaVersion>> {
        let store = self.store(client).await?;
        let entry = store
            .get(version_key(name, version))
            .await
            .map_err(|e| registry_error("reading a schema version", e))?;
        entry
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::invalid(format!("schema registry entry is corrupt: {e}")))
            })
            .transpose()
    }

    /// The compiled validator of a version (cached).
    pub(crate) async fn compiled(
        &self,
        client: &Client,
        name: &str,
        version: u32,
    ) -> Result<Arc<Compiled>> {
        let key = (name.to_string(), version);
        if let Some(c) = self.compiled.read().unwrap().get(&key) {
            return Ok(c.clone());
        }
        let v = self.version(client, name, version).await?.ok_or_else(|| {
            Error::not_found(format!(
                "schema {name:?} has no version {version}; list its versions with schemas()"
            ))
        })?;
        let compiled = Compiled::compile(&v.definition())?;
        self.compiled.write().unwrap().insert(key, compiled.clone());
        Ok(compiled)
    }

    pub(crate) fn remember(&self, name: &str, version: u32, compiled: Arc<Compiled>) {
        self.compiled
            .write()
            .unwrap()
            .insert((name.to_string(), version), compiled);
    }

    pub(crate) fn forget(&self, name: &str, version: u32) {
        self.compiled
            .write()
            .unwrap()
            .remove(&(name.to_string(), version));
    }

    /// The latest version of `name`, kept current by a watch.
    pub(crate) async fn latest(&self, client: &Client, name: &str) -> Result<u32> {
        self.start_watch(client).await?;
        if let Some(v) = self.latest.read().unwrap().get(name) {
            return Ok(*v);
        }
        let (meta, _) = self
            .meta(client, name)
            .await?
            .ok_or_else(|| unknown_schema(name))?;
        let latest = meta.latest().ok_or_else(|| unknown_schema(name))?;
        self.latest
            .write()
            .unwrap()
            .insert(name.to_string(), latest);
        Ok(latest)
    }

    async fn start_watch(&self, client: &Client) -> Result<()> {
        let store = self.store(client).await?.clone();
        let latest: Weak<RwLock<HashMap<String, u32>>> = Arc::downgrade(&self.latest);
        self.watch
            .get_or_try_init(|| async move {
                // With history: the current value of every key first, then changes.
                let first = store
                    .watch_with_history("meta.>")
                    .await
                    .map_err(|e| registry_error("watching schemas", e))?;
                tokio::spawn(follow_latest(store, first, latest));
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Registers a new version after the compatibility check; returns it.
    pub(crate) async fn register(
        &self,
        client: &Client,
        name: &str,
        def: &SchemaDefinition,
        compiled: Arc<Compiled>,
        mode_for_new: Compatibility,
    ) -> Result<SchemaVersion> {
        self.start_watch(client).await?;
        let store = self.store(client).await?;
        for _attempt in 0..10 {
            let current = self.meta(client, name).await?;
            let (mut meta, revision) = match current {
                Some((meta, rev)) => (meta, Some(rev)),
                None => (
                    Meta {
                        format: def.format,
                        compatibility: mode_for_new,
                        versions: Vec::new(),
                        next_version: 1,
                    },
                    None,
                ),
            };
            if meta.format != def.format {
                return Err(Error::invalid(format!(
                    "schema {name:?} is a {} schema; a new version cannot be {}; register it \
                     under another name",
                    meta.format, def.format
                )));
            }
            if let Some(latest) = meta.latest() {
                let previous = self.version(client, name, latest).await?;
                if let Some(previous) = previous
                    && previous.source == def.source
                    && previous.message_type == def.message_type
                {
                    // Same text again: nothing to do.
                    return Ok(previous);
                }
                let old = self.compiled(client, name, latest).await?;
                let breaking = super::compat::breaking_changes(meta.compatibility, &old, &compiled);
                if !breaking.is_empty() {
                    return Err(Error::new(
                        crate::ErrorKind::IncompatibleSchema,
                        format!(
                            "version {} of schema {name:?} is not {} compatible with version \
                             {latest}: {}; keep the change compatible, or register it under a \
                             new schema name",
                            meta.next_version,
                            meta.compatibility,
                            breaking.join("; ")
                        ),
                    ));
                }
            }
            let version = meta.next_version;
            let record = SchemaVersion {
                name: name.to_string(),
                version,
                format: def.format,
                source: def.source.clone(),
                message_type: def.message_type.clone(),
                created: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            };
            let bytes = serde_json::to_vec(&record).expect("serializable");
            if store
                .create(version_key(name, version), bytes.into())
                .await
                .is_err()
            {
                // Another client took this number; read again.
                continue;
            }
            meta.versions.push(version);
            meta.next_version = version + 1;
            let value = serde_json::to_vec(&meta).expect("serializable");
            let written = match revision {
                Some(rev) => store
                    .update(meta_key(name), value.into(), rev)
                    .await
                    .is_ok(),
                None => store.create(meta_key(name), value.into()).await.is_ok(),
            };
            if !written {
                let _ = store.purge(version_key(name, version)).await;
                continue;
            }
            self.remember(name, version, compiled);
            self.latest
                .write()
                .unwrap()
                .insert(name.to_string(), version);
            return Ok(record);
        }
        Err(Error::new(
            crate::ErrorKind::Timeout,
            format!("schema {name:?} is being changed by other clients; try again"),
        ))
    }

    /// Writes `meta` back if its revision did not change.
    pub(crate) async fn update_meta(
        &self,
        client: &Client,
        name: &str,
        meta: &Meta,
        revision: u64,
    ) -> Result<()> {
        let store = self.store(client).await?;
        let value = serde_json::to_vec(meta).expect("serializable");
        store
            .update(meta_key(name), value.into(), revision)
            .await
            .map(|_| ())
            .map_err(|_| {
                Error::new(
                    crate::ErrorKind::Timeout,
                    format!("schema {name:?} was changed concurrently; try again"),
                )
            })
    }

    pub(crate) async fn purge_version(
        &self,
        client: &Client,
        name: &str,
        version: u32,
    ) -> Result<()> {
        let store = self.store(client).await?;
        store
            .purge(version_key(name, version))
            .await
            .map_err(|e| registry_error("deleting a schema version", e))?;
        self.forget(name, version);
        Ok(())
    }

    pub(crate) async fn names(&self, client: &Client) -> Result<Vec<String>> {
        let store = self.store(client).await?;
        let mut keys = store
            .keys()
            .await
            .map_err(|e| registry_error("listing schemas", e))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| registry_error("listing schemas", e))?;
            if let Some(name) = key.strip_prefix("meta.") {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

pub(crate) fn unknown_schema(name: &str) -> Error {
    Error::not_found(format!(
        "schema {name:?} does not exist; register it first with register_schema"
    ))
}

/// Keeps `latest` current from the registry's watch for as long as the
/// registry lives. A watch that ends or fails (a node restart, a lost
/// connection) is opened again, with history, so nothing registered
/// meanwhile is missed.
async fn follow_latest(
    store: kv::Store,
    mut watch: kv::Watch,
    latest: Weak<RwLock<HashMap<String, u32>>>,
) {
    loop {
        while let Some(item) = watch.next().await {
            let entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::debug!(error = %e, "schema watch failed; opening it again");
                    break;
                }
            };
            let Some(latest) = latest.upgrade() else {
                return;
            };
            let name = entry.key.trim_start_matches("meta.").to_string();
            let meta = (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice::<Meta>(&entry.value).ok())
                .flatten();
            let mut map = latest.write().unwrap();
            match meta.and_then(|m| m.latest()) {
                Some(v) => {
                    tracing::debug!(schema = %name, version = v, "schema updated");
                    map.insert(name, v);
                }
                None => {
                    map.remove(&name);
                }
            }
        }
        loop {
            if latest.strong_count() == 0 {
                return;
            }
            // Pause before opening the watch again while the broker is away.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            match store.watch_with_history("meta.>").await {
                Ok(w) => {
                    watch = w;
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "cannot watch schemas yet"),
            }
        }
    }
}
