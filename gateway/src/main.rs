//! `jetstation-gateway`: serves the jetstation gRPC contract.
//!
//! ```text
//! jetstation-gateway --nats-url nats://127.0.0.1:4222 --listen 127.0.0.1:50051 \
//!     --token s3cret=tenant-a --token t0ken=tenant-b
//! ```
//! Every flag has an environment variable (see `--help`). SIGINT/SIGTERM stop
//! it gracefully: consume streams close and commit, then the server exits.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use clap::Parser;
use jetstation_gateway::{Config, Gateway};

#[derive(Debug, Parser)]
#[command(name = "jetstation-gateway", version, about = "jetstation over gRPC")]
struct Args {
    /// NATS URL (repeat for a cluster).
    #[arg(
        long = "nats-url",
        env = "JETSTATION_NATS_URLS",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_urls: Vec<String>,
    #[arg(long, env = "JETSTATION_NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    #[arg(long, env = "JETSTATION_NATS_USER")]
    nats_user: Option<String>,
    #[arg(long, env = "JETSTATION_NATS_PASSWORD", hide_env_values = true)]
    nats_password: Option<String>,
    #[arg(long, env = "JETSTATION_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// Address to listen on.
    #[arg(
        long,
        env = "JETSTATION_GATEWAY_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    listen: SocketAddr,
    /// `TOKEN=NAMESPACE`: a bearer token and the namespace it may reach (repeat).
    #[arg(
        long = "token",
        env = "JETSTATION_GATEWAY_TOKENS",
        value_delimiter = ',',
        required = true,
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// PEM certificate and key: serve gRPC over TLS.
    #[arg(long, env = "JETSTATION_GATEWAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "JETSTATION_GATEWAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest credit (unsettled messages) one consume stream may hold.
    #[arg(long, env = "JETSTATION_GATEWAY_MAX_CREDIT", default_value_t = 1024)]
    max_credit: u32,
    /// Bytes queued per station before a unary Send gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "JETSTATION_GATEWAY_PRODUCER_BUFFER", default_value_t = 64 << 20)]
    producer_buffer_bytes: usize,
    /// Log filter (tracing syntax).
    #[arg(long, env = "JETSTATION_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_env_filter(&args.log).init();
    let mut tokens = HashMap::new();
    for pair in &args.tokens {
        let (token, namespace) = pair
            .split_once('=')
            .ok_or_else(|| format!("--token takes TOKEN=NAMESPACE, got {pair:?}"))?;
        jetstation::names::validate_name("namespace", namespace)?;
        tokens.insert(token.to_string(), namespace.to_string());
    }
    let mut nats =
        jetstation::ConnectOptions::with_urls(args.nats_urls.clone()).name("jetstation-gateway");
    nats.auth = jetstation::Auth::from_parts(
        args.nats_token,
        args.nats_user,
        args.nats_password,
        None,
        args.nats_creds,
    )?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let gateway = Gateway::new(
        Config {
            nats,
            tokens,
            max_credit: args.max_credit,
            producer_buffer_bytes: args.producer_buffer_bytes,
        },
        shutdown,
    );
    let mut server = tonic::transport::Server::builder();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let identity =
            tonic::transport::Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let router = gateway.router(server)?;
    tracing::info!(listen = %args.listen, "jetstation gateway serving");
    let signal = async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
        tracing::info!("stopping: closing consume streams");
        // Consume streams commit and end; the server waits for every open
        // request before it exits.
        let _ = stop.send(true);
    };
    router.serve_with_shutdown(args.listen, signal).await?;
    Ok(())
}
