//! The client side of the gateway: one pooled HTTP client per upstream provider, the
//! classification of each attempt's result, and the upstream's health as the gateway sees it
//! (kept beside the client, not in it: the client is transport only).
//!
//! The proxy talks to upstreams only through [`UpstreamClient`] and [`UpstreamResponse`], so
//! the HTTP client underneath can change without touching the relay. Underneath is hyper's
//! pooled client with rustls, used directly: a higher-level client (reqwest) added a URL
//! parse per request and per answer, a redirect layer and header-map copies, about a third of
//! the gateway's own instructions per request.

mod error;
mod health;
mod kind;
mod outcome;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::{ExposeSecret, SecretString};
use thread_local::ThreadLocal;
use tokio::time::{Instant, timeout_at};
use url::Url;

pub use error::{BuildError, Cause, UpstreamError};
pub use health::UpstreamHealth;
pub use kind::{
    ANTHROPIC_BETA, ANTHROPIC_VERSION, DEFAULT_ANTHROPIC_VERSION, UpstreamKind, X_API_KEY,
};
pub use outcome::Outcome;

use crate::Endpoint;
use crate::request_id::{self, RequestId};

/// Index of an upstream in the configured list; also its label index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamId(u16);

impl UpstreamId {
    pub fn new(index: usize) -> Self {
        Self(u16::try_from(index).expect("fewer than 65536 upstreams"))
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Everything needed to build a client for one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// The `upstream` label value.
    pub name: String,
    /// The API root, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com/v1`.
    pub base_url: Url,
    pub kind: UpstreamKind,
    pub api_key: Option<SecretString>,
    /// Anthropic-kind upstreams: the `anthropic-version` sent when the client sends none.
    pub anthropic_version: String,
    pub connect_timeout: Duration,
    /// The whole exchange for a plain answer; until the response headers for a stream.
    pub request_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
type Connector = HttpsConnector<HttpConnector>;

/// A pooled client for one upstream. Cheap to share: clone the `Arc` it lives in.
#[derive(Debug)]
pub struct UpstreamClient {
    id: UpstreamId,
    name: Arc<str>,
    /// One pool per thread. hyper drives a connection on the runtime that opened it; shared
    /// between actix workers (each its own single-threaded runtime), a connection opened by
    /// one thread would make every request that reuses it hop threads twice.
    http: ThreadLocal<HttpClient>,
    connector: Connector,
    pool: hyper_util::client::legacy::Builder,
    base_url: Url,
    /// The base URL ending in `/`, which pass-through paths are joined to.
    root: Url,
    kind: UpstreamKind,
    /// The URIs of the endpoints routed by model, by [`Endpoint::index`], parsed once;
    /// cloning one is a reference-count increment.
    uris: Vec<Option<Uri>>,
    models_uri: Uri,
    /// The key's header: `Authorization: Bearer <key>` or Anthropic's `x-api-key: <key>`,
    /// its value marked sensitive so that it is never printed.
    credential: Option<(HeaderName, HeaderValue)>,
    /// Anthropic-kind upstreams: the `anthropic-version` sent when the client sends none.
    anthropic_version: Option<HeaderValue>,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(id: UpstreamId, options: UpstreamOptions) -> Result<Self, BuildError> {
        let base = options.base_url;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(BuildError::BaseUrl("it must be an http or https URL"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(BuildError::BaseUrl(
                "it must not carry credentials; put the key in the API key variable",
            ));
        }
        // `join` replaces the last segment unless the base ends in `/`.
        let mut root = base.clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let join = |path: &str| {
            let url = root
                .join(path)
                .map_err(|_| BuildError::BaseUrl("it cannot be joined with an endpoint path"))?;
            Uri::try_from(url.as_str()).map_err(|_| BuildError::BaseUrl("it is not a valid URI"))
        };
        let uris = Endpoint::ALL
            .iter()
            .map(|e| e.upstream_path().map(join).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let models_uri = join("models")?;
        let credential = match &options.api_key {
            Some(key) => {
                let (name, text) = match options.kind {
                    UpstreamKind::OpenAi => {
                        (AUTHORIZATION, format!("Bearer {}", key.expose_secret()))
                    }
                    UpstreamKind::Anthropic => (X_API_KEY, key.expose_secret().to_owned()),
                };
                let mut value = HeaderValue::try_from(text).map_err(|_| BuildError::ApiKey)?;
                value.set_sensitive(true);
                Some((name, value))
            }
            None => None,
        };
        let anthropic_version = match options.kind {
            UpstreamKind::OpenAi => None,
            UpstreamKind::Anthropic => Some(
                HeaderValue::try_from(options.anthropic_version.as_str())
                    .map_err(|_| BuildError::AnthropicVersion)?,
            ),
        };
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(options.connect_timeout));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        // TLS with the platform's trust store (the system CA bundle on Linux); HTTP/2 when the
        // upstream offers it. Redirects are not followed: the gateway relays what it gets.
        let connector = HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(BuildError::Tls)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let mut pool = Client::builder(TokioExecutor::new());
        pool.pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        Ok(Self {
            id,
            name: options.name.into(),
            http: ThreadLocal::new(),
            connector,
            pool,
            base_url: base,
            root,
            kind: options.kind,
            uris,
            models_uri,
            credential,
            anthropic_version,
            request_timeout: options.request_timeout,
            connect_timeout: options.connect_timeout,
        })
    }

    pub fn id(&self) -> UpstreamId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub fn kind(&self) -> UpstreamKind {
        self.kind
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long one attempt may take: the whole exchange for a plain answer, until the
    /// response headers for a stream.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends one attempt and waits for the response headers, at most until `deadline`.
    /// `forwarded` are the client's headers this upstream's API reads (Anthropic's
    /// `anthropic-version` and `anthropic-beta`); empty for OpenAI-kind upstreams.
    ///
    /// # Panics
    /// If `endpoint` is a pass-through (it has no fixed upstream path): the router sends
    /// those with [`UpstreamClient::send_to`].
    pub async fn send(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        forwarded: &[(HeaderName, HeaderValue)],
        request_id: Option<&RequestId>,
        deadline: Instant,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = self.uris[endpoint.index()]
            .as_ref()
            .expect("endpoints routed by model have an upstream path");
        let mut request = self.request(Method::POST, uri, body, forwarded);
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(id) = request_id
            && let Ok(value) = HeaderValue::from_maybe_shared(id.as_bytes().clone())
        {
            headers.insert(REQUEST_ID, value);
        }
        self.exchange(request, deadline).await
    }

    /// Sends a request without a body to `path_and_query` below the base URL (a pass-through
    /// such as `responses/resp_123?include[]=x`), at most until `deadline`.
    pub async fn send_to(
        &self,
        method: Method,
        path_and_query: &str,
        deadline: Instant,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = self
            .root
            .join(path_and_query)
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        let uri = Uri::try_from(url.as_str()).map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        let request = self.request(method, &uri, Bytes::new(), &[]);
        self.exchange(request, deadline).await
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<UpstreamResponse, UpstreamError> {
        match timeout_at(deadline, self.http().request(request)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) => Err(UpstreamError::from_send(e)),
            Ok(Ok(inner)) => Ok(UpstreamResponse { inner }),
        }
    }

    /// Asks the upstream for its model list, to learn whether it is reachable. Any answer
    /// means it is (a 401 or a 503 still proves the server is there).
    pub async fn probe(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let request = self.request(Method::GET, &self.models_uri, Bytes::new(), &[]);
        match timeout_at(Instant::now() + timeout, self.http().request(request)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) => Err(UpstreamError::from_send(e)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// This thread's pool.
    fn http(&self) -> &HttpClient {
        self.http.get_or(|| self.pool.build(self.connector.clone()))
    }

    /// A request to the upstream with the gateway's user agent, the API key, and for an
    /// Anthropic-kind upstream the client's `anthropic-*` headers (the configured version
    /// when the client sent none).
    fn request(
        &self,
        method: Method,
        uri: &Uri,
        body: Bytes,
        forwarded: &[(HeaderName, HeaderValue)],
    ) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some((name, value)) = &self.credential {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(version) = &self.anthropic_version {
            for (name, value) in forwarded {
                headers.append(name.clone(), value.clone());
            }
            if !headers.contains_key(ANTHROPIC_VERSION) {
                headers.insert(ANTHROPIC_VERSION, version.clone());
            }
        }
        request
    }
}

const USER_AGENT_VALUE: &str = concat!("mcp-server/", env!("CARGO_PKG_VERSION"));
/// The request's id, sent upstream.
const REQUEST_ID: HeaderName = HeaderName::from_static(request_id::CLIENT_HEADER);

/// An upstream's answer whose headers have arrived and whose body has not been read.
#[derive(Debug)]
pub struct UpstreamResponse {
    inner: Response<Incoming>,
}

impl UpstreamResponse {
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// Whether the upstream answered with a Server-Sent Events stream.
    pub fn is_event_stream(&self) -> bool {
        self.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
    }

    /// Reads the whole body, at most until `deadline` and at most `limit` bytes: a larger
    /// answer (announced or not) is refused as soon as it is known to be too large.
    pub async fn body(self, deadline: Instant, limit: usize) -> Result<Bytes, UpstreamError> {
        let announced = self
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > limit as u64) {
            return Err(UpstreamError::TooLarge { limit });
        }
        let body = Limited::new(self.inner.into_body(), limit);
        match timeout_at(deadline, body.collect()).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(UpstreamError::TooLarge { limit }),
            Ok(Err(e)) => Err(UpstreamError::Interrupted(e)),
            Ok(Ok(body)) => Ok(body.to_bytes()),
        }
    }

    /// The body as it arrives, chunk by chunk. Dropping the stream closes the connection.
    pub fn into_chunks(self) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Unpin {
        self.inner
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(|e| UpstreamError::Interrupted(e.into())))
    }
}
