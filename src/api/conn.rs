//! The API's connections: an accept loop per listener under one connection cap, each
//! connection served by hyper with a header-read timeout and an idle timeout, and closed
//! gracefully when the daemon stops. `axum::serve` offers neither timeouts nor a cap: a
//! process in the socket's group holding idle connections could take every descriptor the
//! daemon has, and a payment then fails with `Too many open files`.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Time a request head may take once its first byte has arrived, and time a new connection
/// has to send its first request: a register sends a head in one write, so only a client
/// that dribbles it (or connects and says nothing) ever waits this long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a connection may stay open between requests: long enough for a register to reuse
/// its connection from one sale to the next call, short enough that forgotten connections
/// give their descriptor back. An event stream being answered is not idle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Descriptors kept for everything but the API: the journal and its WAL, the gateway's HTTPS
/// connections, scanners, printer, LEDs, the systemd socket, logs.
pub const FD_RESERVE: u64 = 64;

/// Most API connections at a time, whatever the descriptor limit: a till has a register or
/// two; more than this is a client gone wrong.
pub const MAX_CONNECTIONS: usize = 512;

/// Fewest connections allowed when the descriptor limit is too low for the reserve, so the
/// register still gets in.
const MIN_CONNECTIONS: usize = 4;

/// Pause after an accept error that is not the client's (`EMFILE`, `ENFILE`, `ENOBUFS`): the
/// listener stays readable, so retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Connections allowed for a soft `RLIMIT_NOFILE` of `soft` (unknown: the usual 1024).
pub fn connection_limit(soft: Option<u64>) -> usize {
    let soft = soft.unwrap_or(1024);
    let spare = usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    spare.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// The process's soft descriptor limit, if it can be read.
fn soft_nofile_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _hard)) => Some(soft),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read RLIMIT_NOFILE; assuming 1024");
            None
        }
    }
}

/// Connection counts for `/metrics`.
#[derive(Debug, Default)]
pub struct Connections {
    limit: AtomicUsize,
    open: AtomicUsize,
    refused: AtomicU64,
    /// Set while connections are being refused: the burst is logged once, at its start.
    refusing: AtomicBool,
    refused_in_burst: AtomicU64,
}

impl Connections {
    /// Most connections at a time (0 before the API is served).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections closed unanswered because the limit was reached, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.refused_in_burst.fetch_add(1, Ordering::Relaxed);
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                limit = self.limit(),
                "API connection limit reached: new connections are closed until one ends"
            );
        }
    }

    fn admit(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        if self.refusing.swap(false, Ordering::Relaxed) {
            let refused = self.refused_in_burst.swap(0, Ordering::Relaxed);
            tracing::info!(refused, "API accepting connections again");
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Slot {
            _permit: permit,
            connections: self.clone(),
        }
    }
}

/// One connection's place under the cap, given back when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    connections: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The cap shared by the socket and TCP listeners: descriptors are the process's.
pub struct Cap {
    permits: Arc<Semaphore>,
    limit: usize,
    connections: Arc<Connections>,
}

impl Cap {
    /// The cap for this process's descriptor limit, read now.
    pub fn for_this_process(connections: Arc<Connections>) -> Cap {
        let soft = soft_nofile_limit();
        let limit = connection_limit(soft);
        if soft.is_some_and(|s| s < FD_RESERVE + MIN_CONNECTIONS as u64) {
            tracing::warn!(
                soft_limit = soft,
                "RLIMIT_NOFILE is too low for the daemon; set LimitNOFILE= (see docs/operations.md)"
            );
        }
        tracing::debug!(limit, soft_limit = soft, "API connection limit");
        connections.limit.store(limit, Ordering::Relaxed);
        Cap {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            connections,
        }
    }

    /// Waits until every connection has ended.
    pub async fn all_closed(&self) {
        let n = u32::try_from(self.limit).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(n).await;
    }
}

/// Who is on the other end of a connection, as the operator actions record it: the socket
/// peer's user and process, or the TCP peer's address.
#[derive(Debug, Clone)]
pub struct Peer(pub String);

/// A listener the API accepts connections from.
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn next_connection(&self) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn next_connection(&self) -> io::Result<(Self::Io, Peer)> {
        let (stream, _) = self.accept().await?;
        let peer = match stream.peer_cred() {
            Ok(c) => match c.pid() {
                Some(pid) => format!("socket uid {} pid {pid}", c.uid()),
                None => format!("socket uid {}", c.uid()),
            },
            Err(_) => "socket".to_string(),
        };
        Ok((stream, Peer(peer)))
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn next_connection(&self) -> io::Result<(Self::Io, Peer)> {
        let (stream, addr) = self.accept().await?;
        Ok((stream, Peer(format!("tcp {addr}"))))
    }
}

/// Accepts connections and serves `app` on each until `stop` is cancelled; connections still
/// open then are shut down gracefully by their own tasks.
pub async fn accept_loop<L: Accept>(
    listener: L,
    app: Router,
    cap: &Cap,
    what: &'static str,
    stop: CancellationToken,
) {
    // Accept errors in a row: the first is logged, the rest counted.
    let mut failing = 0u64;
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.next_connection() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    if failing == 0 {
                        tracing::warn!(error = %e, listener = what, "API accept failed; retrying");
                    }
                    failing += 1;
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        if failing > 0 {
            tracing::info!(failures = failing, listener = what, "API accepting again");
            failing = 0;
        }
        // At the cap, the newest connection is accepted and closed at once rather than left
        // unaccepted: left in the kernel's backlog, connections would queue there (and fill
        // it, so a register's connect() fails or waits behind them), while an immediate close
        // tells the client at once and keeps the backlog free for the next connection, which
        // gets in as soon as one of the open ones ends.
        let Ok(permit) = cap.permits.clone().try_acquire_owned() else {
            cap.connections.refuse();
            drop(io);
            continue;
        };
        let slot = cap.connections.admit(permit);
        tokio::spawn(serve_connection(io, peer, app.clone(), slot, stop.clone()));
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves HTTP/1.1 on one connection until the client closes it, a timeout closes it, or the
/// daemon stops (then the request being answered finishes first).
async fn serve_connection<I>(io: I, peer: Peer, app: Router, slot: Slot, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requests = Arc::new(Requests::default());
    let io = TokioIo::new(HeadDeadline::new(io, requests.clone()));
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        let guard = requests.begin();
        let answer = hyper::service::Service::call(&app, request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| Tracked {
                body,
                _guard: guard,
            }))
        }
    });
    // hyper's header-read timer starts whenever the connection waits for a head, so it also
    // bounds the time between requests: it is the idle timeout. The tighter bound on the
    // head itself is HeadDeadline's.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        result = conn.as_mut() => Some(result),
        _ = stop.cancelled() => None,
    };
    let result = match ended {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "API connection ended");
    }
    drop(slot);
}

/// What the requests on one connection tell its reader: how many have started, and whether
/// one is being answered.
#[derive(Default)]
struct Requests {
    started: AtomicU64,
    open: AtomicBool,
}

impl Requests {
    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.open.store(true, Ordering::Release);
        RequestGuard(self.clone())
    }
}

/// Held by a response body until hyper has written it (or the connection ends).
struct RequestGuard(Arc<Requests>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.open.store(false, Ordering::Release);
    }
}

/// A response body that marks its request answered when it is dropped.
struct Tracked {
    body: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for Tracked {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Closes a connection whose request head does not arrive in time: a new connection must
/// send its first head within [`HEADER_READ_TIMEOUT`], and a head begun after an idle time
/// must be complete within it. Reads within a request (its body, the end of the stream
/// while an event stream is answered) are not timed here.
struct HeadDeadline<S> {
    inner: S,
    requests: Arc<Requests>,
    /// `requests.started` when `deadline` was set.
    seen: u64,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> HeadDeadline<S> {
    fn new(inner: S, requests: Arc<Requests>) -> HeadDeadline<S> {
        HeadDeadline {
            inner,
            requests,
            seen: 0,
            deadline: Some(Box::pin(tokio::time::sleep(HEADER_READ_TIMEOUT))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let started = this.requests.started.load(Ordering::Acquire);
        if started != this.seen {
            // The head the deadline was for is complete: the next one gets its own.
            this.seen = started;
            this.deadline = None;
        }
        if this.requests.open.load(Ordering::Acquire) {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            )));
        }
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() > before && this.deadline.is_none() {
            // The first bytes of a head after an idle time: the rest must follow soon.
            this.deadline = Some(Box::pin(tokio::time::sleep(HEADER_READ_TIMEOUT)));
        }
        Poll::Ready(result)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_keeps_the_reserve_and_stays_between_the_bounds() {
        assert_eq!(connection_limit(Some(1024)), MAX_CONNECTIONS);
        assert_eq!(connection_limit(Some(300)), 236);
        assert_eq!(connection_limit(Some(u64::MAX)), MAX_CONNECTIONS);
        assert_eq!(connection_limit(Some(100)), 36);
        assert_eq!(connection_limit(Some(10)), MIN_CONNECTIONS);
        assert_eq!(connection_limit(None), MAX_CONNECTIONS);
    }
}
