//! The schema registry, as methods of the `Client`.

use crate::{
    client::Client,
    error::{Result, invalid},
    payload::Payload,
    types::{SchemaInfo, SchemaVersion},
};

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    /// Registers a schema version; format is "json_schema", "protobuf" or
    /// "avro". Returns the version number.
    pub async fn register_schema(
        &self,
        name: String,
        format: String,
        source: String,
        message_type: Option<String>,
    ) -> Result<u32> {
        let definition = jetstation::SchemaDefinition {
            format: format.parse()?,
            source,
            message_type,
        };
        Ok(self.inner.register_schema(&name, definition).await?.version)
    }

    /// One version of a schema (`nil`: the latest).
    pub async fn schema(&self, name: String, version: Option<u32>) -> Result<SchemaVersion> {
        Ok(self.inner.schema(&name, version).await?.into())
    }

    pub async fn schemas(&self) -> Result<Vec<SchemaInfo>> {
        Ok(self
            .inner
            .schemas()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// "none", "backward", "forward" or "full".
    pub async fn set_schema_compatibility(&self, name: String, mode: String) -> Result<()> {
        Ok(self
            .inner
            .set_schema_compatibility(&name, mode.parse()?)
            .await?)
    }

    pub async fn delete_schema_version(&self, name: String, version: u32) -> Result<()> {
        Ok(self.inner.delete_schema_version(&name, version).await?)
    }

    /// Encodes a JSON value (text) with a schema version (`nil`: latest).
    pub async fn encode_with_schema(
        &self,
        name: String,
        json: String,
        version: Option<u32>,
    ) -> Result<Payload> {
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| invalid(format!("not JSON: {e}")))?;
        Ok(self
            .inner
            .encode_with_schema(&name, version, &value)
            .await?
            .into())
    }

    /// Decodes a payload written with a schema version (`nil`: latest) into
    /// JSON text.
    pub async fn decode_with_schema(
        &self,
        name: String,
        payload: Payload,
        version: Option<u32>,
    ) -> Result<String> {
        let value = self
            .inner
            .decode_with_schema(&name, version, &payload.0)
            .await?;
        Ok(value.to_string())
    }
}
