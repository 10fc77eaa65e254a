//! TLS for `https://` client URLs (etcd's `--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`) and peer URLs (the same four
//! with `--peer-`).
//!
//! This module owns reading the PEM files and building the rustls
//! configurations (ring provider): the client URL's server side (ALPN `h2`
//! for gRPC, `http/1.1` for the HTTP endpoints), and both sides of peer
//! traffic (HTTP/1.1). It is used once at start-up, so a bad path or file
//! ends start-up with one line; it never touches requests, which reach the
//! same handlers whether or not TLS carried them. Per connection it only
//! reads the common name a client's verified certificate gives, for
//! `--client-cert-auth`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{ClientTls, PeerTls};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Worded as etcd words a file it cannot open.
    #[error("open {}: {}", path.display(), describe_io(source))]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    BadFile { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Go's wording for the usual open errors (`no such file or directory`).
fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Open {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::BadFile {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Every certificate in a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| bad(path, format!("no usable private key: {e}")))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a CA bundle, as a root store.
fn roots(ca_file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file)? {
        roots
            .add(cert)
            .map_err(|e| bad(ca_file, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A server config presenting `cert_file`/`key_file`, requiring client
/// certificates `client_ca` verifies when given.
fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let certs = certificates(cert_file)?;
    let key = private_key(key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_file)?), provider())
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(key_file, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Reads the files and builds the acceptor every `https://` client
/// listener shares.
pub fn acceptor(files: &ClientTls) -> Result<TlsAcceptor, TlsError> {
    let config = server_config(
        &files.cert_file,
        &files.key_file,
        files.trusted_ca_file.as_deref(),
        &[b"h2", b"http/1.1"],
    )?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The acceptor every `https://` peer listener shares: it presents the
/// peer certificate and admits only members whose certificate the peer CA
/// signed, as soon as there is a peer CA (etcd requires one then, with or
/// without `--peer-client-cert-auth`). `None` without a peer certificate
/// (config has refused https peer URLs then).
pub fn peer_acceptor(files: &PeerTls) -> Result<Option<TlsAcceptor>, TlsError> {
    let Some((cert_file, key_file)) = &files.cert_and_key else {
        return Ok(None);
    };
    let config = server_config(
        cert_file,
        key_file,
        files.trusted_ca_file.as_deref(),
        &[b"http/1.1"],
    )?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// The peer client's TLS, used for every `https://` peer URL: it trusts
/// the peer CA (the system's CAs without one, as etcd's peer client does)
/// and offers the peer certificate to listeners that ask for one.
pub fn peer_connector(files: &PeerTls) -> Result<TlsConnector, TlsError> {
    let roots = match &files.trusted_ca_file {
        Some(ca_file) => roots(ca_file)?,
        None => system_roots(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &files.cert_and_key {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => builder
            .with_client_auth_cert(certificates(cert_file)?, private_key(key_file)?)
            .map_err(|e| bad(key_file, format!("does not match the certificate: {e}")))?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The system's CA store; certificates it cannot read are skipped (a
/// peer they would have verified is then refused, and says why).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "reading the system's CA certificates");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// How long a client or a member has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The next accepted connection, or `None` once `stopped` completes. A failed
/// accept (out of file descriptors, say) is logged and retried shortly.
pub(crate) async fn next_connection(
    listener: &tokio::net::TcpListener,
    stopped: &mut (impl std::future::Future<Output = ()> + Unpin),
    side: &'static str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a {side} connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            () = &mut *stopped => return None,
        }
    }
}

/// The server side of a TLS handshake, bounded in time; the error says why
/// it failed, for the caller to log at the level its side deserves.
/// The common name of the certificate a client presented (verified
/// against the trusted CA during the handshake), as etcd reads it for
/// `--client-cert-auth`: the first one in the leaf's subject.
pub fn client_common_name(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Option<String> {
    common_name(stream.get_ref().1.peer_certificates()?.first()?)
}

fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_string)
}

pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_is_read_from_the_subject() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cn-alice.pem");
        let certificate = certificates(&path).unwrap().remove(0);
        assert_eq!(common_name(&certificate).as_deref(), Some("alice"));
        assert_eq!(common_name(&CertificateDer::from(vec![0x30, 0x03])), None);
    }
}
