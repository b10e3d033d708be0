//! `jetstation ui`: a web dashboard over the same client as the rest of the
//! tool. Overview, station, dead letters and schemas pages, live through
//! server-sent events; its assets are compiled into the binary, so it works
//! without network access.

mod api;
mod assets;
mod auth;
mod live;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router, middleware,
    routing::{get, post},
};
use clap::Args;
use jetstation::{Client, Error, ErrorKind, Result};

use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct Ui {
    /// Address to serve on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Hide and refuse every action that changes something (replays).
    #[arg(long)]
    read_only: bool,
    /// A token the browser must give to log in (and scripts as
    /// `Authorization: Bearer …`). Without it, anyone who reaches the
    /// address can use the dashboard.
    #[arg(long, env = "JETSTATION_UI_TOKEN", hide_env_values = true)]
    ui_token: Option<String>,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) client: Client,
    pub(crate) read_only: bool,
    pub(crate) sessions: auth::Sessions,
}

pub(crate) type Shared = Arc<AppState>;

impl Ui {
    pub(crate) async fn run(self, client: &Client, _out: Output) -> Result<()> {
        let state = Arc::new(AppState {
            client: client.clone(),
            read_only: self.read_only,
            sessions: auth::Sessions::new(self.ui_token),
        });
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("cannot listen on {}: {e}", self.listen),
                )
            })?;
        let address = listener.local_addr().map_err(|e| {
            Error::new(ErrorKind::InvalidArgument, format!("no local address: {e}"))
        })?;
        println!(
            "dashboard on http://{address}/{}",
            if self.read_only { " (read-only)" } else { "" }
        );
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Connection, format!("dashboard stopped: {e}")))
    }
}

fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/session", get(auth::session))
        .route("/stations", get(api::stations))
        .route("/stations/{name}", get(api::station))
        .route("/stations/{name}/dead-letters", get(api::dead_letters))
        .route(
            "/stations/{name}/dead-letters/replay-all",
            post(api::replay_all),
        )
        .route(
            "/stations/{name}/dead-letters/{sequence}/replay",
            post(api::replay),
        )
        .route("/schemas", get(api::schemas))
        .route("/schemas/{name}", get(api::schema))
        .route("/schemas/{name}/diff", get(api::schema_diff))
        .route("/live/overview", get(live::overview))
        .route("/live/stations/{name}", get(live::station))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout));
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/style.css", get(assets::style))
        .route("/favicon.svg", get(assets::icon))
        .nest("/api", api)
        .with_state(state)
}
