//! The HTTP side of `pgoci serve`: a hyper HTTP/1.1 server on a tokio
//! multi-thread runtime, over TLS (rustls, ring) when asked, one task per
//! connection; blob bodies streamed from the file in chunks read on the
//! blocking pool (never the whole blob in memory); SIGTERM and SIGINT
//! taken over by tokio's handlers, then a graceful stop.

use super::error::ServeError;
use super::{Payload, Ready, Server, Summary};
use crate::error::Result;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use std::convert::Infallible;
use std::fs::File;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How much of a blob one read takes (and one frame carries).
const CHUNK: u64 = 256 << 10;
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Nor one that has not sent a request's headers (idle keep-alive too).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections served at once, whatever the file limit allows.
const MAX_CONNECTIONS: u64 = 4096;

/// The server's TLS settings from a PEM certificate chain and key.
pub(super) fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| ServeError::TlsCert {
            path: cert.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(ServeError::TlsCertEmpty {
            path: cert.to_path_buf(),
        }
        .into());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| ServeError::TlsKey {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| ServeError::TlsVersions { source })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| ServeError::TlsPair { source })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SIGTERM and SIGINT, taken over from their default (to end the process)
/// so that a stop lets the answers in flight finish.
struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Within the runtime: tokio's handler is installed for both.
    fn take_over() -> Result<Self> {
        let take = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| ServeError::Signal {
                signal: name,
                source,
            })
        };
        Ok(StopSignals {
            term: take(SignalKind::terminate(), "SIGTERM")?,
            int: take(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    /// The next stop signal.
    async fn next(&mut self) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        tracing::info!("{name}: stopping");
    }
}

/// Raises the soft limit on open files to the hard one (each connection
/// holds a socket, and a blob file while it streams one) and returns how
/// many connections fit.
fn connection_slots() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current.unwrap_or(1024);
    if let Some(hard) = limit.maximum {
        let raised = Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if hard > soft && setrlimit(Resource::Nofile, raised).is_ok() {
            soft = hard;
        }
    }
    (soft.saturating_sub(64) / 2).clamp(16, MAX_CONNECTIONS) as usize
}

pub(super) fn run(
    server: Server,
    listen: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    ready: impl FnOnce(&Ready),
) -> Result<Summary> {
    let slots = connection_slots();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pgoci-serve")
        .build()
        .map_err(|source| ServeError::Runtime { source })?;
    let result = runtime.block_on(async move {
        let mut stop = StopSignals::take_over()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen {
                address: listen,
                source,
            })?;
        let address = listener
            .local_addr()
            .map_err(|source| ServeError::LocalAddress {
                address: listen,
                source,
            })?;
        ready(&Ready {
            address,
            tls: tls.is_some(),
            auth: server.users.is_some(),
            counts: server.layout.counts(),
        });
        let (requests, forced) = serve(
            listener,
            Arc::new(server),
            tls.map(TlsAcceptor::from),
            slots,
            &mut stop,
        )
        .await;
        Ok(Summary {
            address,
            requests,
            forced,
        })
    });
    // Reads still running on the blocking pool are short: not waited for long.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Accepts until a stop signal, then lets the connections finish what
/// they are answering (idle ones close at once). Returns the number of
/// requests answered and whether a second signal cut that short.
async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<Server>,
    tls: Option<TlsAcceptor>,
    slots: usize,
    stop: &mut StopSignals,
) -> (u64, bool) {
    let graceful = GracefulShutdown::new();
    let requests = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop.next() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.next() => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (server, tls, builder, requests) = (
            server.clone(),
            tls.clone(),
            builder.clone(),
            requests.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let response = answer(&server, &req, remote, &requests);
                async move { Ok::<_, Infallible>(response) }
            });
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!("{remote}: TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("{remote}: TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("{remote}: {e}");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!("waiting for {open} connection(s) to finish (signal again to stop now)");
    }
    let forced = tokio::select! {
        _ = graceful.shutdown() => false,
        _ = stop.next() => true,
    };
    (requests.load(Ordering::Relaxed), forced)
}

/// One request: routed, logged (`-v`), made a response.
fn answer(
    server: &Server,
    req: &Request<Incoming>,
    remote: SocketAddr,
    requests: &AtomicU64,
) -> Response<Body> {
    let started = Instant::now();
    let uri = req.uri();
    let reply = server.respond(req.method(), uri.path(), uri.query(), req.headers());
    requests.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        "{remote} {} {} {} {} {:?}",
        req.method(),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        reply.status.as_u16(),
        reply
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0"),
        started.elapsed()
    );
    let body = match reply.body {
        Payload::Empty => Body::Empty,
        Payload::Bytes(b) => Body::Bytes(Some(b)),
        Payload::Blob(f) => Body::File(FileBody {
            file: f.file,
            pos: f.offset,
            end: f.offset + f.len,
            pending: None,
        }),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

/// A response body: nothing, bytes in memory, or a byte range of a file.
pub(super) enum Body {
    Empty,
    Bytes(Option<Bytes>),
    File(FileBody),
}

/// A byte range of a file, read a chunk at a time on the blocking pool
/// (the next chunk only once the previous one was taken).
pub(super) struct FileBody {
    file: Arc<File>,
    pos: u64,
    end: u64,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.pending.is_none() {
            if self.pos >= self.end {
                return Poll::Ready(None);
            }
            let (file, pos) = (self.file.clone(), self.pos);
            let n = (self.end - pos).min(CHUNK) as usize;
            self.pending = Some(tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; n];
                // A file cut short under the server fails the response.
                file.read_exact_at(&mut buf, pos)?;
                Ok(Bytes::from(buf))
            }));
        }
        let handle = self.pending.as_mut().expect("set above");
        let result = ready!(Pin::new(handle).poll(cx));
        self.pending = None;
        match result {
            Ok(Ok(bytes)) => {
                self.pos += bytes.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Ok(Err(e)) => {
                self.pos = self.end;
                Poll::Ready(Some(Err(e)))
            }
            Err(e) => {
                self.pos = self.end;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::File(f) => f.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Bytes(b) => b.is_none(),
            Body::File(f) => f.pending.is_none() && f.pos >= f.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Body::File(f) => f.end.saturating_sub(f.pos),
        })
    }
}
