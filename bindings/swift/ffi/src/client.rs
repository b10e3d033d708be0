//! `connect` and the `Client`: stations, groups and dead letters.

use std::sync::Arc;

use crate::{
    consumer::Consumer,
    error::Result,
    producer::Producer,
    types::{
        ConnectOptions, ConsumerOptions, DeadLetter, ProducerOptions, Receipt, Station,
        StationConfig, connect_options, consumer_options, producer_options, station_config,
    },
};

#[derive(uniffi::Object)]
pub struct Client {
    pub(crate) inner: jetstation::Client,
}

/// Connects and checks the server (2.12 or newer, JetStream enabled).
#[uniffi::export(async_runtime = "tokio")]
pub async fn connect(urls: Vec<String>, options: ConnectOptions) -> Result<Arc<Client>> {
    let options = connect_options(urls, options)?;
    Ok(Arc::new(Client {
        inner: jetstation::Client::connect(options).await?,
    }))
}

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    pub fn server_version(&self) -> String {
        self.inner.server_version()
    }

    /// Creates a station; a no-op when it exists with the same settings.
    pub async fn create_station(&self, name: String, config: StationConfig) -> Result<Station> {
        let config = station_config(config)?;
        Ok(self.inner.create_station(&name, config).await?.into())
    }

    /// Changes what may change (retention, limits, dedup window, dead
    /// letters, schema binding, replicas).
    pub async fn update_station(&self, name: String, config: StationConfig) -> Result<Station> {
        let config = station_config(config)?;
        Ok(self.inner.update_station(&name, config).await?.into())
    }

    pub async fn station(&self, name: String) -> Result<Station> {
        Ok(self.inner.station(&name).await?.into())
    }

    pub async fn stations(&self) -> Result<Vec<Station>> {
        Ok(self
            .inner
            .stations()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn delete_station(&self, name: String) -> Result<()> {
        Ok(self.inner.delete_station(&name).await?)
    }

    pub async fn producer(
        &self,
        station: String,
        options: ProducerOptions,
    ) -> Result<Arc<Producer>> {
        let options = producer_options(options)?;
        let inner = self.inner.producer(&station, options).await?;
        Ok(Arc::new(Producer {
            inner,
            // Called from an async call: inside the runtime they all share.
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    pub async fn consumer(
        &self,
        station: String,
        group: String,
        options: ConsumerOptions,
    ) -> Result<Arc<Consumer>> {
        let options = consumer_options(options)?;
        let inner = self.inner.consumer(&station, &group, options).await?;
        Ok(Arc::new(Consumer::new(inner)))
    }

    /// Deletes a consumer group: its position is lost.
    pub async fn delete_group(&self, station: String, group: String) -> Result<()> {
        Ok(self.inner.delete_group(&station, &group).await?)
    }

    pub async fn dead_letters(&self, station: String) -> Result<Vec<DeadLetter>> {
        Ok(self
            .inner
            .dead_letters(&station)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn replay_dead_letter(&self, station: String, sequence: u64) -> Result<Receipt> {
        Ok(self
            .inner
            .replay_dead_letter(&station, sequence)
            .await?
            .into())
    }

    /// Removes every dead letter of the station for good; returns how many.
    pub async fn purge_dead_letters(&self, station: String) -> Result<u64> {
        Ok(self.inner.purge_dead_letters(&station).await?)
    }

    /// Replays every dead letter of the station, oldest first.
    pub async fn replay_dead_letters(&self, station: String) -> Result<Vec<Receipt>> {
        Ok(self
            .inner
            .replay_dead_letters(&station)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Closes the connection after flushing what was sent.
    pub async fn close(&self) -> Result<()> {
        Ok(self.inner.clone().close().await?)
    }
}
