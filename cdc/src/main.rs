//! `jetstation-cdc`: PostgreSQL changes into stations, and back into a table.

use clap::Parser;
use jetstation::{Client, ConnectOptions};
use jetstation_cdc::cli::Cdc;

#[derive(Debug, Parser)]
#[command(
    name = "jetstation-cdc",
    version,
    about = "PostgreSQL change data capture into jetstation stations"
)]
struct Cli {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "url",
        env = "NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    urls: Vec<String>,
    /// Namespace (tenant) of the stations.
    #[arg(long, env = "JETSTATION_NAMESPACE", global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Cdc,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = async {
        let mut options = ConnectOptions::with_urls(cli.urls.clone()).name("jetstation-cdc");
        if let Some(ns) = &cli.namespace {
            options = options.namespace(ns);
        }
        let client = Client::connect(options).await?;
        let result = cli.command.run(&client).await;
        let _ = client.close().await;
        result
    }
    .await;
    if let Err(e) = result {
        eprintln!("error ({}): {}", e.kind().as_str(), e.message());
        std::process::exit(1);
    }
}
