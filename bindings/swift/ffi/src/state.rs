//! A compacted station's state view: `latest` and `snapshot` on the `Client`.

use std::sync::Arc;

use crate::{client::Client, error::Result, types::StateEntry};

/// A compacted station's state view, key by key (`next()` until `nil`).
#[derive(uniffi::Object)]
pub struct Snapshot {
    inner: tokio::sync::Mutex<jetstation::Snapshot>,
}

#[uniffi::export(async_runtime = "tokio")]
impl Snapshot {
    /// The next key's latest message; `nil` at the end.
    pub async fn next(&self) -> Result<Option<StateEntry>> {
        match self.inner.lock().await.next().await {
            Some(entry) => Ok(Some(entry?.into())),
            None => Ok(None),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    /// The latest message of `key` in a compacted station, or `nil`.
    pub async fn latest(&self, station: String, key: String) -> Result<Option<StateEntry>> {
        Ok(self.inner.latest(&station, &key).await?.map(Into::into))
    }

    /// Every key's latest message in a compacted station.
    pub async fn snapshot(&self, station: String) -> Result<Arc<Snapshot>> {
        let inner = self.inner.snapshot(&station).await?;
        Ok(Arc::new(Snapshot {
            inner: tokio::sync::Mutex::new(inner),
        }))
    }
}
