//! The ADS server's TLS, replaceable while serving: a renewed server certificate or a new
//! client CA bundle applies to the next connection, and open streams keep theirs, so a
//! renewal or a CA rotation never drops a proxy.
//!
//! Hand-written over tokio-rustls (tonic's TLS is fixed when the server starts): tonic reads
//! the client certificate of a `tokio_rustls::server::TlsStream` as it does for its own TLS.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::Stream;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::TlsOptions;

/// A TLS handshake that takes longer than this is dropped (a client that connects and says
/// nothing must not hold a task).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS settings were refused; the previous ones stay in force.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server certificate: {0}")]
    Certificate(String),
    #[error("server key: {0}")]
    Key(String),
    #[error("client CA bundle: {0}")]
    ClientCa(String),
    #[error("TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS settings new connections get; clone it to update them from elsewhere.
#[derive(Clone)]
pub struct TlsReloader {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader").finish_non_exhaustive()
    }
}

fn config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(opts.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(opts.key_pem.as_bytes())
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &opts.client_ca_pem {
        Some(bundle) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
                let ca = ca.map_err(|e| TlsError::ClientCa(e.to_string()))?;
                roots
                    .add(ca)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

impl TlsReloader {
    pub fn new(opts: &TlsOptions) -> Result<Self, TlsError> {
        Ok(Self {
            current: Arc::new(RwLock::new(config(opts)?)),
        })
    }

    /// Serves `opts` to connections from now on; on an error the settings in force stay.
    pub fn update(&self, opts: &TlsOptions) -> Result<(), TlsError> {
        let next = config(opts)?;
        if let Ok(mut current) = self.current.write() {
            *current = next;
        }
        Ok(())
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current
            .read()
            .ok()
            .map(|c| TlsAcceptor::from(Arc::clone(&c)))
    }
}

/// TLS connections accepted on `listener`, each with the settings in force when it arrived;
/// failed handshakes are logged and dropped, never ending the stream.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: TlsReloader,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // The server is gone: stop listening.
                _ = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an xDS connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(acceptor) = tls.acceptor() else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "xDS TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%peer, "xDS TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
