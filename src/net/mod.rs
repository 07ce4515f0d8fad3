//! The HTTP API: how external systems call back, start instances and read
//! them over the network (`flowdesk serve`, or the window's Server menu).
//!
//! - `api.rs`: routes, handlers and the OpenAPI document built from them;
//! - `dto.rs`: the JSON shapes;
//! - `error.rs`: every refusal as a status and a body with a stable `code`;
//! - `token.rs`: bearer token secrets, kept by the runtime's store only as hashes.
//!
//! The listener runs on its own tokio runtime in a background thread, so the
//! command line and the window (neither async) start and stop it the same way.

mod api;
mod dto;
mod error;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;

pub use api::{ApiLimits, ApiState, MAX_BULK_SERIALS, router};
pub use error::{ApiError, ApiErrorBody, error_code};

use crate::runtime::Runtime;

/// Where `flowdesk serve` listens unless told otherwise: this machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// hyper's own limit on header lines, which the API's must stay under.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// How long stopping waits for calls in flight before it gives up on them.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: it is in use (another `flowdesk serve`?); choose another with --listen")]
    InUse { address: SocketAddr },
    #[error("cannot listen on {address}: {cause}")]
    Bind { address: SocketAddr, cause: std::io::Error },
    #[error("cannot start the API's threads: {0}")]
    Runtime(std::io::Error),
}

/// A running API listener. Dropping it stops it.
pub struct RunningApi {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApi").field("address", &self.address).finish()
    }
}

impl RunningApi {
    /// Binds `address` (port 0 picks a free one) and serves the API for
    /// `runtime` until stopped. Binding happens before this returns, so a
    /// busy port is reported here and not lost in a thread.
    pub fn start(runtime: Arc<Runtime>, address: SocketAddr) -> Result<RunningApi, ServeError> {
        RunningApi::start_with(runtime, address, ApiLimits::default())
    }

    /// [`Self::start`] with other limits than the defaults.
    pub fn start_with(runtime: Arc<Runtime>, address: SocketAddr, limits: ApiLimits) -> Result<RunningApi, ServeError> {
        let listener = std::net::TcpListener::bind(address).map_err(|cause| match cause.kind() {
            std::io::ErrorKind::AddrInUse => ServeError::InUse { address },
            _ => ServeError::Bind { address, cause },
        })?;
        listener.set_nonblocking(true).map_err(|cause| ServeError::Bind { address, cause })?;
        let bound = listener.local_addr().map_err(|cause| ServeError::Bind { address, cause })?;
        let tokio_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flowdesk-api")
            // Engine calls run scripts here: give them the stack scripts need.
            .thread_stack_size(crate::model::script::SCRIPT_THREAD_STACK)
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let app = router(ApiState::new(runtime, limits));
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("flowdesk-api-listener".to_owned())
            .spawn(move || {
                tokio_runtime.block_on(serve(listener, app, limits, stopped));
                tokio_runtime.shutdown_timeout(STOP_GRACE);
            })
            .map_err(ServeError::Runtime)?;
        Ok(RunningApi { address: bound, stop: Some(stop), thread: Some(thread) })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The API's base address, as clients use it.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.address)
    }

    /// Stops accepting, lets calls in flight end (up to a few seconds) and
    /// waits for the listener's thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        self.shut_down();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    app: axum::Router,
    limits: ApiLimits,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(_) => return,
    };
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                // Out of file descriptors and the like: the next accept may work.
                Err(_) => continue,
            },
            _ = &mut stopped => break,
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            // hyper answers a head it will not parse with a bare status and
            // no body, and has no hook to shape it. Letting it parse well
            // past `ApiLimits` leaves the refusal to the router, which
            // answers with the API's JSON; see `refuse_oversized_head`.
            .max_headers(limits.max_headers.saturating_mul(4).max(HYPER_DEFAULT_MAX_HEADERS));
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-call is not an error of ours.
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await;
}
