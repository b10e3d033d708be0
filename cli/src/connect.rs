//! Connection flags, matching the library's connect options; each flag can
//! also come from an environment variable.

use std::path::PathBuf;

use clap::Args;
use jetstation::{Auth, Client, ConnectOptions, Tls};

#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// Server URL; repeat it (or separate with commas) for the nodes of a cluster.
    #[arg(
        long = "url",
        env = "NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    urls: Vec<String>,
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[arg(long, env = "NATS_USER", global = true)]
    user: Option<String>,
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// NKey seed.
    #[arg(long, env = "NATS_NKEY", hide_env_values = true, global = true)]
    nkey: Option<String>,
    /// Credentials file (JWT and seed).
    #[arg(long, env = "NATS_CREDS", global = true)]
    creds: Option<PathBuf>,
    /// Refuse a connection without TLS.
    #[arg(long, global = true)]
    tls_required: bool,
    /// CA certificates to trust (PEM).
    #[arg(long, env = "NATS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM), with --tls-key.
    #[arg(long, env = "NATS_CERT", global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "NATS_KEY", global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Namespace (tenant) of the stations.
    #[arg(long, env = "JETSTATION_NAMESPACE", global = true)]
    namespace: Option<String>,
}

impl Connection {
    pub(crate) async fn connect(&self) -> jetstation::Result<Client> {
        let auth = Auth::from_parts(
            self.token.clone(),
            self.user.clone(),
            self.password.clone(),
            self.nkey.clone(),
            self.creds.clone(),
        )?;
        let mut options = ConnectOptions::with_urls(self.urls.clone())
            .auth(auth)
            .name("jetstation-cli")
            .tls(Tls {
                required: self.tls_required,
                root_certificates: self.tls_ca.clone(),
                client_certificate: self.tls_cert.clone().zip(self.tls_key.clone()),
            });
        if let Some(ns) = &self.namespace {
            options = options.namespace(ns);
        }
        Client::connect(options).await
    }
}
