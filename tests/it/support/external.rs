//! A fake external system on loopback, for tests of what flowdesk sends out
//! and of callbacks that come back.
//!
//! ```ignore
//! let external = ExternalSystem::start(|request| {
//!     assert_eq!(request.method, "POST");
//!     Reply::ok()
//! });
//! let url = external.url("/hook"); // http://127.0.0.1:<port>/hook
//! // ... run something that calls `url` ...
//! assert_eq!(external.requests().len(), 1);
//! ```
//!
//! Every request is recorded (method, path with query, headers, body) *before*
//! the handler sees it, then the handler (a closure the test supplies) decides
//! the answer. The handler runs on a blocking thread, so it may block, e.g. on
//! a channel the test holds, to keep a request open as long as the test wants
//! (no sleeps needed), or call the engine itself (an early callback).
//!
//! Dropping the `ExternalSystem` stops the server without waiting for handlers
//! still blocked: a test that let a request time out finishes at once.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as the external system received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub method: String,
    /// The path and query as sent, still percent-encoded (`/orders/A%20B?n=1`).
    pub path: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ReceivedRequest {
    /// The first header of that name (any case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics (failing the test) if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.body))
    }
}

/// The answer the handler gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// `200 OK` with an empty body.
    pub fn ok() -> Reply {
        Reply { status: 200, body: String::new() }
    }

    pub fn status(status: u16, body: &str) -> Reply {
        Reply { status, body: body.to_owned() }
    }
}

type Handler = dyn Fn(&ReceivedRequest) -> Reply + Send + Sync;

/// The running fake; see the module documentation.
pub struct ExternalSystem {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ExternalSystem {
    /// Starts listening on a free loopback port; ready when this returns.
    pub fn start(handler: impl Fn(&ReceivedRequest) -> Reply + Send + Sync + 'static) -> ExternalSystem {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let address = listener.local_addr().expect("listener address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime");
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let recorded = recorded.clone();
            let handler = handler.clone();
            async move { answer(request, recorded, handler).await }
        });
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            // Ends only when the runtime is shut down.
            let _ = axum::serve(listener, app).await;
        });
        ExternalSystem { address, requests, runtime: Some(runtime) }
    }

    /// `http://127.0.0.1:<port><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for ExternalSystem {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn answer(request: Request<Body>, recorded: Arc<Mutex<Vec<ReceivedRequest>>>, handler: Arc<Handler>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, 1 << 20).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let received = ReceivedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    recorded.lock().unwrap_or_else(PoisonError::into_inner).push(received.clone());
    // The handler may block (on the test's channel, or on the engine).
    let reply = tokio::task::spawn_blocking(move || handler(&received)).await;
    match reply {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, reply.body).into_response()
        }
        Err(panicked) => (StatusCode::INTERNAL_SERVER_ERROR, format!("handler panicked: {panicked}")).into_response(),
    }
}

/// A loopback URL nothing listens on: connecting to it is refused.
pub fn closed_port_url(path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("listener address");
    drop(listener);
    format!("http://{address}{path}")
}
