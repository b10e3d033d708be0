//! The connection to a NATS cluster.
//!
//! A [`Client`] holds one `async-nats` connection (which reconnects by itself,
//! with the exponential backoff set here) and the JetStream context every
//! station, producer and consumer of that client shares. At connect time it
//! reads the server version and refuses servers older than 2.12: consumer
//! groups rely on pinned-client priority groups (2.11) and the producer's
//! order guard on atomic batch publish (2.12), the one guard that a
//! clustered stream checks safely (see [`crate::producer`]).

use std::{path::PathBuf, sync::Arc, time::Duration};

use async_nats::{ConnectErrorKind, jetstream};

use crate::{
    error::{Error, ErrorKind, Result},
    names::Names,
};

/// Oldest nats-server accepted.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 12, 0);

/// How the client proves who it is.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Auth {
    #[default]
    None,
    Token(String),
    UserPassword {
        user: String,
        password: String,
    },
    /// An nkey seed (`SU…`).
    NKey(String),
    /// A `.creds` file (JWT + nkey seed).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for Auth {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, <redacted>)"),
            Self::NKey(_) => f.write_str("NKey(<redacted>)"),
            Self::CredsFile(p) => write!(f, "CredsFile({})", p.display()),
        }
    }
}

impl Auth {
    /// The credentials given as separate options (as bindings receive
    /// them); giving more than one method is an error.
    pub fn from_parts(
        token: Option<String>,
        user: Option<String>,
        password: Option<String>,
        nkey_seed: Option<String>,
        creds_file: Option<PathBuf>,
    ) -> Result<Auth> {
        let given = [
            token.is_some(),
            user.is_some(),
            nkey_seed.is_some(),
            creds_file.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given > 1 {
            return Err(Error::invalid(
                "give one way to authenticate: a token, a user and password, an nkey seed, or a \
                 creds file",
            ));
        }
        if password.is_some() && user.is_none() {
            return Err(Error::invalid("a password needs a user"));
        }
        Ok(match (token, user, nkey_seed, creds_file) {
            (Some(t), ..) => Auth::Token(t),
            (_, Some(user), ..) => Auth::UserPassword {
                user,
                password: password.unwrap_or_default(),
            },
            (.., Some(seed), _) => Auth::NKey(seed),
            (.., Some(path)) => Auth::CredsFile(path),
            _ => Auth::None,
        })
    }
}

/// TLS settings.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Refuse plain-text connections.
    pub required: bool,
    /// PEM file with the CA certificates to trust.
    pub root_certificates: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

/// Options of [`Client::connect`], built with chained setters.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub urls: Vec<String>,
    pub auth: Auth,
    pub tls: Tls,
    /// Prefix of every station this client creates or sees (a tenant).
    pub namespace: Option<String>,
    /// Connection name shown by the server's monitoring.
    pub name: Option<String>,
    pub connect_timeout: Duration,
    /// Timeout of one broker request (a publish acknowledgement, an API call).
    pub request_timeout: Duration,
    /// Longest wait between two reconnect attempts.
    pub max_reconnect_delay: Duration,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            auth: Auth::None,
            tls: Tls::default(),
            namespace: None,
            name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            max_reconnect_delay: Duration::from_secs(2),
        }
    }

    /// Several URLs of one cluster, tried in turn.
    pub fn with_urls<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut options = Self::new(String::new());
        options.urls = urls.into_iter().map(Into::into).collect();
        options
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn token(self, token: impl Into<String>) -> Self {
        self.auth(Auth::Token(token.into()))
    }

    pub fn user_password(self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth(Auth::UserPassword {
            user: user.into(),
            password: password.into(),
        })
    }

    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }
}

/// A connected client. Cheap to clone; every clone shares the connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

#[derive(Debug)]
pub(crate) struct ClientInner {
    /// Set by `close`: every later call is refused with `Closed`.
    pub(crate) closed: std::sync::atomic::AtomicBool,
    pub(crate) nats: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) names: Names,
    pub(crate) schemas: crate::schema::registry::Registry,
    pub(crate) telemetry: Arc<crate::telemetry::Recorder>,
    pub(crate) liveness: crate::liveness::Liveness,
    /// New stream leaders as the broker announces them (see
    /// [`crate::elections`]).
    pub(crate) elections: crate::elections::Elections,
}

impl Client {
    /// Connects, checks the server version and that JetStream answers.
    pub async fn connect(options: ConnectOptions) -> Result<Client> {
        let names = Names::new(options.namespace.clone())?;
        if options.urls.is_empty() || options.urls.iter().any(|u| u.trim().is_empty()) {
            return Err(Error::invalid(
                "no NATS URL given; pass e.g. \"nats://127.0.0.1:4222\"",
            ));
        }
        let urls = options.urls.join(",");
        let nats_options = nats_options(&options).await?;
        let nats = nats_options
            .connect(options.urls.as_slice())
            .await
            .map_err(|e| connect_error(&urls, &e))?;

        let info = nats.server_info();
        check_version(&info.version)?;

        let mut js = jetstream::new(nats.clone());
        js.set_timeout(options.request_timeout);
        // A request to the JetStream API proves JetStream is enabled and
        // that our credentials may use it.
        js.query_account().await.map_err(|e| {
            let err = Error::from_nats("JetStream is not available", &e);
            match err.kind() {
                // No answer in time: also what a cluster that has just started
                // gives until its nodes have elected a leader.
                ErrorKind::Timeout => Error::new(
                    ErrorKind::Connection,
                    format!(
                        "connected to nats-server {} at {urls}, but JetStream did not answer \
                         in time ({e}); a cluster that has just started may still be electing \
                         its leader (try again), else start the server with JetStream enabled \
                         (-js) and give this user access to $JS.API",
                        info.version
                    ),
                ),
                ErrorKind::Connection | ErrorKind::Broker => Error::new(
                    ErrorKind::Connection,
                    format!(
                        "connected to nats-server {} at {urls}, but JetStream did not answer \
                         ({e}); start the server with JetStream enabled (-js) and give this \
                         user access to $JS.API",
                        info.version
                    ),
                ),
                _ => err,
            }
        })?;
        tracing::debug!(server = %info.server_name, version = %info.version, "connected");
        Ok(Client {
            inner: Arc::new(ClientInner {
                closed: false.into(),
                nats,
                js,
                schemas: crate::schema::registry::Registry::new(names.namespace()),
                names,
                telemetry: Default::default(),
                liveness: Default::default(),
                elections: Default::default(),
            }),
        })
    }

    /// `Closed` once `close` was called on this client or any clone of it.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.inner.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::closed("client"));
        }
        Ok(())
    }

    /// Whether the server this client is connected to is part of a cluster.
    pub fn is_clustered(&self) -> bool {
        self.inner.nats.server_info().cluster.is_some()
    }

    /// Creates one of jetstation's own buckets or streams (group members,
    /// schema registry, dead letters) as replicated as the cluster allows:
    /// 3 replicas on a cluster (any one node may die), fewer when the
    /// cluster has fewer nodes, 1 on a single server. `create` gets the
    /// replica count to try.
    pub(crate) async fn create_replicated<T, E, F, Fut>(
        &self,
        create: F,
    ) -> std::result::Result<T, E>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut replicas = if self.is_clustered() { 3 } else { 1 };
        loop {
            match create(replicas).await {
                Err(e) if replicas > 1 => {
                    tracing::debug!(replicas, error = %e, "cannot place replicas; trying fewer");
                    replicas -= 1;
                }
                result => return result,
            }
        }
    }

    /// Version string of the server this client is connected to.
    pub fn server_version(&self) -> String {
        self.inner.nats.server_info().version
    }

    /// Whether the server is nats-server `version` or newer.
    fn is_at_least(&self, version: (u64, u64, u64)) -> bool {
        parse_version(&self.server_version()).is_some_and(|v| v >= version)
    }

    /// Whether the server takes fast-ingest batches (nats-server 2.14+).
    pub(crate) fn has_fast_batches(&self) -> bool {
        self.is_at_least((2, 14, 0))
    }

    /// Makes sure the server still answers (see [`crate::liveness`]): called
    /// when a request or a pull of this client got no answer.
    pub(crate) fn check_connection(&self) {
        self.inner.liveness.check(&self.inner.nats);
    }

    /// Whether the server can reset a consumer to its ack floor
    /// (nats-server 2.14+).
    pub(crate) fn has_consumer_reset(&self) -> bool {
        self.is_at_least((2, 14, 0))
    }

    /// Largest message (payload + headers) the server accepts.
    pub fn max_payload(&self) -> usize {
        self.inner.nats.server_info().max_payload
    }

    /// The namespace this client works in, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.inner.names.namespace()
    }

    /// Flushes pending writes and closes the connection.
    pub async fn close(self) -> Result<()> {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner
            .nats
            .drain()
            .await
            .map_err(|e| Error::from_nats("closing the connection", &e))
    }
}

async fn nats_options(options: &ConnectOptions) -> Result<async_nats::ConnectOptions> {
    let max_delay = options.max_reconnect_delay;
    let mut o = async_nats::ConnectOptions::new()
        .connection_timeout(options.connect_timeout)
        .request_timeout(Some(options.request_timeout))
        // Keep publishing buffers bounded but large enough for pipelining.
        .client_capacity(8192)
        .subscription_capacity(1 << 16)
        .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                other => tracing::debug!(event = %other, "NATS event"),
            }
        });
    if let Some(name) = &options.name {
        o = o.name(name);
    }
    o = match &options.auth {
        Auth::None => o,
        Auth::Token(t) => o.token(t.clone()),
        Auth::UserPassword { user, password } => {
            o.user_and_password(user.clone(), password.clone())
        }
        Auth::NKey(seed) => o.nkey(seed.clone()),
        Auth::CredsFile(path) => o.credentials_file(path).await.map_err(|e| {
            Error::invalid(format!(
                "cannot read credentials file {}: {e}; pass the path of a .creds file \
                 (JWT and nkey seed) generated by nsc",
                path.display()
            ))
        })?,
    };
    if options.tls.required {
        o = o.require_tls(true);
    }
    if let Some(ca) = &options.tls.root_certificates {
        o = o.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &options.tls.client_certificate {
        o = o.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(o)
}

/// Exponential backoff with jitter for reconnects: 50 ms, 100 ms, 200 ms…
/// capped at `max`.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = Duration::from_millis(50u64.saturating_mul(1 << attempts.min(16)));
    let base = exp.min(max);
    let jitter = rand::random::<f64>() * 0.3 + 0.85;
    base.mul_f64(jitter)
}

fn connect_error(urls: &str, err: &async_nats::ConnectError) -> Error {
    match err.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => Error::new(
            ErrorKind::Auth,
            format!(
                "the server at {urls} refused the credentials ({err}); check the token, \
                 user/password, nkey or creds file"
            ),
        ),
        ConnectErrorKind::TimedOut => Error::new(
            ErrorKind::Timeout,
            format!("connecting to {urls} timed out; check the address and firewalls"),
        ),
        ConnectErrorKind::Tls => Error::new(
            ErrorKind::Connection,
            format!("TLS with {urls} failed ({err}); check certificates and the tls settings"),
        ),
        ConnectErrorKind::ServerParse => Error::invalid(format!(
            "cannot parse NATS URL(s) {urls:?} ({err}); use e.g. \"nats://host:4222\""
        )),
        _ => Error::new(
            ErrorKind::Connection,
            format!(
                "cannot connect to NATS at {urls} ({err}); check that nats-server is running \
                 and reachable"
            ),
        ),
    }
    .with_source(std::io::Error::other(err.to_string()))
}

pub(crate) fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn check_version(version: &str) -> Result<()> {
    let (a, b, c) = MIN_SERVER_VERSION;
    match parse_version(version) {
        Some(v) if v >= MIN_SERVER_VERSION => Ok(()),
        _ => Err(Error::new(
            ErrorKind::ServerTooOld,
            format!(
                "nats-server {version} is too old: jetstation needs {a}.{b}.{c} or newer; \
                 upgrade the server"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_numerically() {
        assert_eq!(parse_version("2.10.4"), Some((2, 10, 4)));
        assert_eq!(parse_version("v2.15.0-beta.1"), Some((2, 15, 0)));
        assert!(check_version("2.12.0").is_ok());
        assert!(check_version("2.11.11").is_err());
        assert!(check_version("2.15.0").is_ok());
        let err = check_version("2.9.10").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ServerTooOld);
        assert!(err.message().contains("2.9.10") && err.message().contains("2.12.0"));
    }

    #[test]
    fn credentials_from_separate_options() {
        let s = |v: &str| Some(v.to_string());
        assert!(matches!(
            Auth::from_parts(None, None, None, None, None),
            Ok(Auth::None)
        ));
        assert!(matches!(
            Auth::from_parts(s("t"), None, None, None, None),
            Ok(Auth::Token(_))
        ));
        assert!(matches!(
            Auth::from_parts(None, s("u"), s("p"), None, None),
            Ok(Auth::UserPassword { .. })
        ));
        let err = Auth::from_parts(s("t"), s("u"), None, None, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("one way to authenticate"), "{err}");
        let err = Auth::from_parts(None, None, s("p"), None, None).unwrap_err();
        assert!(err.message().contains("needs a user"), "{err}");
    }

    #[test]
    fn reconnect_delay_grows_and_is_capped() {
        let max = Duration::from_secs(2);
        assert_eq!(reconnect_delay(1, max), Duration::ZERO);
        assert!(reconnect_delay(2, max) < reconnect_delay(6, max));
        assert!(reconnect_delay(30, max) <= max.mul_f64(1.15));
    }
}
