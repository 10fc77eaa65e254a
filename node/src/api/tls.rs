//! TLS for `https://` client URLs, as etcd's `--cert-file`, `--key-file`,
//! `--trusted-ca-file` and `--client-cert-auth` configure it.
//!
//! This module owns reading the PEM files and building the rustls server
//! configuration (ring provider; ALPN `h2` for gRPC, `http/1.1` for the
//! HTTP endpoints). It is used once at start-up, so a bad path or file ends
//! start-up with one line; it never touches requests, which reach the same
//! services whether or not TLS carried them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ClientTls;

/// Why the client URL's TLS could not be set up.
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

/// Reads the files and builds the acceptor every `https://` client
/// listener shares.
pub fn acceptor(files: &ClientTls) -> Result<TlsAcceptor, TlsError> {
    let certs = certificates(&files.cert_file)?;
    let key = private_key(&files.key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.trusted_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| bad(ca_file, format!("unusable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        bad(
            &files.key_file,
            format!("does not match the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
