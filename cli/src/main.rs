//! `jetstation`: look at and operate stations, groups, dead letters and
//! schemas from a terminal or a script.
//!
//! Tables by default, `--json` for scripts (one JSON document per command;
//! `tail` prints one JSON object per message). Errors print their stable
//! kind and what to do, and exit with status 1 (2 for a bad command line).

mod commands;
mod connect;
mod output;
mod ui;
mod views;

use clap::{Parser, Subcommand};

use crate::{connect::Connection, output::Output};

#[derive(Debug, Parser)]
#[command(
    name = "jetstation",
    version,
    about = "Stations, groups, dead letters and schemas of a jetstation hub"
)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, show, create, update and delete stations.
    #[command(subcommand)]
    Stations(commands::stations::Stations),
    /// Consumer groups of a station, with their members and lag.
    #[command(subcommand)]
    Groups(commands::groups::Groups),
    /// Dead letters of a station: list, show, replay one or all.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(commands::dead_letters::DeadLetters),
    /// Schemas of the registry.
    #[command(subcommand)]
    Schemas(commands::schemas::Schemas),
    /// Send one message.
    Send(commands::messages::Send),
    /// Follow a station live.
    Tail(commands::messages::Tail),
    /// Produce then consume throughput, on a station of its own.
    Bench(commands::bench::Bench),
    /// Serve the web dashboard.
    Ui(ui::Ui),
    /// PostgreSQL change data capture into stations, and the sink back into a table.
    #[command(subcommand)]
    Cdc(jetstation_cdc::cli::Cdc),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let result = async {
        let client = cli.connection.connect().await?;
        let result = match cli.command {
            Command::Stations(c) => c.run(&client, out).await,
            Command::Groups(c) => c.run(&client, out).await,
            Command::DeadLetters(c) => c.run(&client, out).await,
            Command::Schemas(c) => c.run(&client, out).await,
            Command::Send(c) => c.run(&client, out).await,
            Command::Tail(c) => c.run(&client, out).await,
            Command::Bench(c) => c.run(&client, out).await,
            Command::Ui(c) => c.run(&client, out).await,
            Command::Cdc(c) => c.run(&client).await,
        };
        let _ = client.close().await;
        result
    }
    .await;
    if let Err(e) = result {
        eprintln!("error ({}): {}", e.kind().as_str(), e.message());
        if let Some(hint) = hint(e.kind()) {
            eprintln!("  {hint}");
        }
        std::process::exit(1);
    }
}

/// What to do about an error of each kind.
fn hint(kind: jetstation::ErrorKind) -> Option<&'static str> {
    use jetstation::ErrorKind::*;
    Some(match kind {
        Connection => "check --url (or NATS_URL) and that the server is running",
        Auth => "check --token, --user/--password, --nkey or --creds",
        NotFound => "check the name (`jetstation stations ls` lists the stations)",
        InvalidArgument => "see `jetstation help` for what each argument accepts",
        ServerTooOld => "upgrade nats-server to 2.12 or newer",
        Timeout => "the server did not answer in time; try again, or check the cluster's health",
        _ => return None,
    })
}
