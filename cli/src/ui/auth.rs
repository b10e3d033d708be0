//! Logging in to the dashboard. With `--ui-token`, every API call needs
//! either `Authorization: Bearer <token>` (scripts) or the session cookie the
//! login form obtains (browsers; HttpOnly and SameSite=Strict, so another
//! site can neither read it nor make the browser send it with a replay).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::Shared;

const COOKIE: &str = "jetstation_session";
/// How long a browser session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug)]
pub(crate) struct Sessions {
    token: Option<String>,
    open: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    pub(crate) fn new(token: Option<String>) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
    }

    fn open(&self) -> String {
        let id: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut open = self.open.lock().expect("sessions lock");
        let now = Instant::now();
        open.retain(|_, since| now.duration_since(*since) < SESSION_LIFETIME);
        open.insert(id.clone(), now);
        id
    }

    fn is_open(&self, id: &str) -> bool {
        let open = self.open.lock().expect("sessions lock");
        open.get(id)
            .is_some_and(|since| since.elapsed() < SESSION_LIFETIME)
    }

    fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(id);
    }

    /// Whether a request may use the API.
    fn allows(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() {
            return true;
        }
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return self.token_matches(bearer.trim());
        }
        session_cookie(headers).is_some_and(|id| self.is_open(id))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

pub(crate) fn refusal(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"kind": kind, "message": message}))).into_response()
}

/// Middleware in front of every API route but login and logout.
pub(crate) async fn require(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if state.sessions.allows(request.headers()) {
        next.run(request).await
    } else {
        refusal(
            StatusCode::UNAUTHORIZED,
            "auth",
            "log in with the dashboard's token",
        )
    }
}

/// What the page needs to know before it shows anything.
pub(crate) async fn session(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "read_only": state.read_only,
        "login_required": state.sessions.token.is_some(),
        "server_version": state.client.server_version(),
        "clustered": state.client.is_clustered(),
        "namespace": state.client.namespace(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub(crate) async fn login(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    let given = body.get("token").and_then(Value::as_str).unwrap_or("");
    if state.sessions.token.is_none() {
        return Json(json!({"ok": true})).into_response();
    }
    if !state.sessions.token_matches(given) {
        // Slows down guessing: one wrong token costs the guesser a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        return refusal(StatusCode::UNAUTHORIZED, "auth", "wrong token");
    }
    let id = state.sessions.open();
    (
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                SESSION_LIFETIME.as_secs()
            ),
        )],
        Json(json!({"ok": true})),
    )
        .into_response()
}

pub(crate) async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.sessions.close(id);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Json(json!({"ok": true})),
    )
        .into_response()
}
