//! Schemaverse: typed messages with a schema registry kept inside NATS.
//!
//! Named schemas have numbered, immutable versions in one of three formats
//! (JSON Schema draft 7 / 2020-12, Protobuf `.proto` source with a chosen
//! message type, Avro) and a compatibility mode checked when a version is
//! registered ([`compat`]). A station binds a schema (its latest version, or a
//! pinned one): producers validate every payload before it is queued and stamp
//! `Jst-Schema` / `Jst-Schema-Version` headers; consumers validate against the
//! version named in the headers (or the bound one) and dead-letter what does
//! not match, with the reason.

mod avro_json;
mod compat;
mod protobuf_check;
pub(crate) mod registry;
pub(crate) mod validator;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    client::Client,
    error::{Error, ErrorKind, Result},
    names::validate_name,
};
use registry::unknown_schema;
pub(crate) use validator::Compiled;

/// Header naming the schema a message was validated against.
pub const SCHEMA_HEADER: &str = "Jst-Schema";
/// Header naming the schema version.
pub const SCHEMA_VERSION_HEADER: &str = "Jst-Schema-Version";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaFormat {
    /// JSON Schema, draft 7 or 2020-12 (from `$schema`; 2020-12 by default).
    JsonSchema,
    /// Protobuf `.proto` source (proto2 or proto3) and a message type.
    Protobuf,
    /// Avro schema (JSON).
    Avro,
}

crate::vocabulary::vocabulary!(SchemaFormat, "schema format", {
    JsonSchema => "json_schema" | "jsonschema" | "json-schema" | "json",
    Protobuf => "protobuf" | "proto",
    Avro => "avro",
});

/// How a new version must relate to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// No check.
    None,
    /// The new version reads data written with the previous one.
    #[default]
    Backward,
    /// The previous version reads data written with the new one.
    Forward,
    /// Both.
    Full,
}

crate::vocabulary::vocabulary!(Compatibility, "compatibility mode", {
    None => "none",
    Backward => "backward",
    Forward => "forward",
    Full => "full",
});

/// The text of a schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaDefinition {
    pub format: SchemaFormat,
    pub source: String,
    /// For Protobuf: the fully qualified message type (e.g. `hr.EmployeeChange`).
    pub message_type: Option<String>,
}

impl SchemaDefinition {
    pub fn json_schema(source: impl Into<String>) -> Self {
        Self {
            format: SchemaFormat::JsonSchema,
            source: source.into(),
            message_type: None,
        }
    }
    pub fn protobuf(source: impl Into<String>, message_type: impl Into<String>) -> Self {
        Self {
            format: SchemaFormat::Protobuf,
            source: source.into(),
            message_type: Some(message_type.into()),
        }
    }
    pub fn avro(source: impl Into<String>) -> Self {
        Self {
            format: SchemaFormat::Avro,
            source: source.into(),
            message_type: None,
        }
    }
}

/// One registered version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub name: String,
    pub version: u32,
    pub format: SchemaFormat,
    pub source: String,
    pub message_type: Option<String>,
    /// RFC 3339 registration time.
    pub created: String,
}

impl SchemaVersion {
    pub fn definition(&self) -> SchemaDefinition {
        SchemaDefinition {
            format: self.format,
            source: self.source.clone(),
            message_type: self.message_type.clone(),
        }
    }
}

/// A schema and its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    pub name: String,
    pub format: SchemaFormat,
    pub compatibility: Compatibility,
    pub versions: Vec<u32>,
    pub latest: u32,
}

/// The schema a station binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaBinding {
    pub name: String,
    /// A pinned version; `None` follows the latest version.
    pub version: Option<u32>,
}

impl Client {
    /// Registers a new version of schema `name` (creating the schema with
    /// compatibility mode `backward`). Registering the latest text again is
    /// a no-op that returns the latest version.
    pub async fn register_schema(
        &self,
        name: &str,
        definition: SchemaDefinition,
    ) -> Result<SchemaVersion> {
        self.register_schema_with(name, definition, Compatibility::default())
            .await
    }

    /// Like [`Client::register_schema`]; `compatibility` applies when the
    /// schema is new (change it later with `set_schema_compatibility`).
    #[tracing::instrument(skip(self, definition), fields(schema = name))]
    pub async fn register_schema_with(
        &self,
        name: &str,
        definition: SchemaDefinition,
        compatibility: Compatibility,
    ) -> Result<SchemaVersion> {
        self.ensure_open()?;
        validate_name("schema", name)?;
        let compiled = Compiled::compile(&definition)?;
        self.inner
            .schemas
            .register(self, name, &definition, compiled, compatibility)
            .await
    }

    /// A version of a schema (`None`: the latest).
    pub async fn schema(&self, name: &str, version: Option<u32>) -> Result<SchemaVersion> {
        self.ensure_open()?;
        validate_name("schema", name)?;
        let registry = &self.inner.schemas;
        let version = match version {
            Some(v) => v,
            None => registry.latest(self, name).await?,
        };
        registry.version(self, name, version).await?.ok_or_else(|| {
            Error::not_found(format!(
                "schema {name:?} has no version {version}; list its versions with schemas()"
            ))
        })
    }

    /// Every schema of this namespace, with its versions.
    pub async fn schemas(&self) -> Result<Vec<SchemaInfo>> {
        self.ensure_open()?;
        let registry = &self.inner.schemas;
        let mut out = Vec::new();
        for name in registry.names(self).await? {
            if let Some((meta, _)) = registry.meta(self, &name).await?
                && let Some(latest) = meta.latest()
            {
                out.push(SchemaInfo {
                    name,
                    format: meta.format,
                    compatibility: meta.compatibility,
                    versions: meta.versions.clone(),
                    latest,
                });
            }
        }
        Ok(out)
    }

    /// Changes the compatibility mode checked for the next versions.
    pub async fn set_schema_compatibility(&self, name: &str, mode: Compatibility) -> Result<()> {
        self.ensure_open()?;
        validate_name("schema", name)?;
        let registry = &self.inner.schemas;
        let (mut meta, revision) = registry
            .meta(self, name)
            .await?
            .ok_or_else(|| unknown_schema(name))?;
        meta.compatibility = mode;
        registry.update_meta(self, name, &meta, revision).await
    }

    /// Deletes one version, refused while a station binds it.
    pub async fn delete_schema_version(&self, name: &str, version: u32) -> Result<()> {
        self.ensure_open()?;
        validate_name("schema", name)?;
        let registry = &self.inner.schemas;
        let (mut meta, revision) = registry
            .meta(self, name)
            .await?
            .ok_or_else(|| unknown_schema(name))?;
        if !meta.versions.contains(&version) {
            return Err(Error::not_found(format!(
                "schema {name:?} has no version {version}"
            )));
        }
        let latest = meta.latest();
        let bound_by: Vec<String> = self
            .stations()
            .await?
            .into_iter()
            .filter(|s| {
                s.config
                    .schema
                    .as_ref()
                    .is_some_and(|b| b.name == name && b.version.or(latest) == Some(version))
            })
            .map(|s| s.name)
            .collect();
        if !bound_by.is_empty() {
            return Err(Error::invalid(format!(
                "version {version} of schema {name:?} is bound by station(s) {}; bind them to \
                 another version first",
                bound_by.join(", ")
            )));
        }
        meta.versions.retain(|v| *v != version);
        registry.update_meta(self, name, &meta, revision).await?;
        registry.purge_version(self, name, version).await
    }

    /// Encodes a JSON-like value with a Protobuf or Avro schema version
    /// (`None`: latest), so services can send typed messages without
    /// generated code. For JSON Schema it validates and serialises.
    pub async fn encode_with_schema(
        &self,
        name: &str,
        version: Option<u32>,
        value: &Value,
    ) -> Result<Vec<u8>> {
        self.ensure_open()?;
        let (compiled, version) = self.compiled_schema(name, version).await?;
        compiled
            .encode(value)
            .map_err(|detail| schema_refusal(name, version, &detail))
    }

    /// Decodes a payload written with a schema version into a JSON-like value.
    pub async fn decode_with_schema(
        &self,
        name: &str,
        version: Option<u32>,
        payload: &[u8],
    ) -> Result<Value> {
        self.ensure_open()?;
        let (compiled, version) = self.compiled_schema(name, version).await?;
        compiled
            .decode(payload)
            .map_err(|detail| schema_refusal(name, version, &detail))
    }

    pub(crate) async fn compiled_schema(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(Arc<Compiled>, u32)> {
        validate_name("schema", name)?;
        let registry = &self.inner.schemas;
        let version = match version {
            Some(v) => v,
            None => registry.latest(self, name).await?,
        };
        Ok((registry.compiled(self, name, version).await?, version))
    }

    /// Checks a binding points at something that exists.
    pub(crate) async fn check_binding(&self, binding: &SchemaBinding) -> Result<()> {
        let (meta, _) = self
            .inner
            .schemas
            .meta(self, &binding.name)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "cannot bind schema {:?}: it does not exist; register it first with \
                     register_schema",
                    binding.name
                ))
            })?;
        if let Some(v) = binding.version
            && !meta.versions.contains(&v)
        {
            return Err(Error::not_found(format!(
                "cannot bind version {v} of schema {:?}: its versions are {:?}",
                binding.name, meta.versions
            )));
        }
        Ok(())
    }
}

/// A compiled schema version, usable without a broker: validation, and
/// Protobuf / Avro conversion from and to JSON-like values.
#[derive(Debug, Clone)]
pub struct Validator {
    compiled: Arc<Compiled>,
    label: String,
}

impl Validator {
    /// Compiles a definition (malformed text is an `invalid_argument` error).
    pub fn compile(definition: &SchemaDefinition) -> Result<Self> {
        Ok(Self {
            compiled: Compiled::compile(definition)?,
            label: format!("{} schema", definition.format),
        })
    }

    /// Checks a payload; a mismatch is a `schema_validation` error naming the
    /// path and the rule.
    pub fn validate(&self, payload: &[u8]) -> Result<()> {
        self.compiled.validate(payload).map_err(|detail| {
            Error::new(
                ErrorKind::SchemaValidation,
                format!("message refused by the {}: {detail}", self.label),
            )
        })
    }

    pub fn encode(&self, value: &Value) -> Result<Vec<u8>> {
        self.compiled
            .encode(value)
            .map_err(|detail| Error::new(ErrorKind::SchemaValidation, detail))
    }

    pub fn decode(&self, payload: &[u8]) -> Result<Value> {
        self.compiled
            .decode(payload)
            .map_err(|detail| Error::new(ErrorKind::SchemaValidation, detail))
    }
}

/// The typed refusal of a payload by a schema.
pub(crate) fn schema_refusal(name: &str, version: u32, detail: &str) -> Error {
    Error::new(
        ErrorKind::SchemaValidation,
        format!("message refused by schema {name:?} version {version}: {detail}"),
    )
}
