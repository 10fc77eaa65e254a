//! The client side of TLS to `https://` client URLs, configured as
//! etcdctl's `--cacert`, `--cert`, `--key`, `--insecure-transport` and
//! `--insecure-skip-tls-verify` configure it; shared by `ceteractl` and
//! `cetera-console`.
//!
//! This module owns reading the PEM files, the rustls client configuration
//! (ring provider, ALPN `h2`), the TLS dial and the connector tonic dials
//! through. Which endpoints use TLS is decided here too: `https://` ones
//! always, `http://` ones never, and scheme-less ones (`host:port`) when TLS
//! files were given or `--insecure-transport=false`, as etcd's client does.
//! Without `--cacert`, servers are verified against the system's CA store.
//! It never parses flags or prints: callers map [`ClientTlsError`] to their
//! own messages and exit codes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Why the TLS flags could not be turned into a client configuration. The
/// texts are etcdctl's where etcdctl has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientTlsError {
    /// A file could not be opened (`open <path>: <why>`).
    #[error("open {path}: {why}")]
    Open { path: String, why: String },
    /// A file is not valid PEM.
    #[error("{path}: invalid PEM certificate: {why}")]
    InvalidPem { path: String, why: String },
    /// A certificate file holds no certificate.
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    /// A CA certificate rustls cannot use as a trust anchor.
    #[error("{path}: unusable CA certificate: {why}")]
    UnusableCa { path: String, why: String },
    /// The key file holds no private key.
    #[error("{path}: no usable private key: {why}")]
    NoKey { path: String, why: String },
    /// The key does not go with the certificate (or rustls refuses it).
    #[error("{path}: {why}")]
    BadKey { path: String, why: String },
    /// `--cert` without `--key` or the other way round.
    #[error("KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")]
    CertWithoutKey { cert: String, key: String },
    /// rustls refused the protocol versions (does not happen with ring).
    #[error("{0}")]
    Protocol(String),
}

/// The TLS flags, as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--cacert`: the CA bundle servers are verified against.
    pub cacert: Option<String>,
    /// `--cert`: the client certificate.
    pub cert: Option<String>,
    /// `--key`: its private key.
    pub key: Option<String>,
    /// `--insecure-transport` (etcdctl's default is true).
    pub insecure_transport: bool,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_verify: bool,
}

impl TlsFlags {
    /// The flags etcdctl starts from: insecure transport, nothing else.
    pub fn etcdctl_defaults() -> TlsFlags {
        TlsFlags {
            insecure_transport: true,
            ..TlsFlags::default()
        }
    }

    fn files_given(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// Whether scheme-less endpoints (`host:port`) use TLS.
    pub fn bare_endpoints_use_tls(&self) -> bool {
        self.files_given() || !self.insecure_transport
    }
}

/// The client side of TLS, ready to dial.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    /// Whether scheme-less endpoints use TLS too.
    for_bare_endpoints: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("for_bare_endpoints", &self.for_bare_endpoints)
            .finish_non_exhaustive()
    }
}

/// How one endpoint is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &str) -> Result<Vec<u8>, ClientTlsError> {
    std::fs::read(Path::new(path)).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        ClientTlsError::Open {
            path: path.to_string(),
            why,
        }
    })
}

fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientTlsError::InvalidPem {
            path: path.to_string(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ClientTlsError::NoCertificate {
            path: path.to_string(),
        });
    }
    Ok(certs)
}

fn roots(cacert: Option<&str>) -> Result<RootCertStore, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    match cacert {
        Some(cacert) => {
            for cert in certificates(cacert)? {
                roots.add(cert).map_err(|e| ClientTlsError::UnusableCa {
                    path: cacert.to_string(),
                    why: e.to_string(),
                })?;
            }
        }
        None => {
            // etcdctl trusts the system's CAs when no --cacert is given;
            // with none found, no server verifies, as there.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

impl ClientTls {
    /// `None` when nothing asks for TLS: no TLS file, `--insecure-transport`
    /// left true, no `--insecure-skip-tls-verify` and no `https://`
    /// endpoint (`any_https`).
    pub fn from_flags(
        flags: &TlsFlags,
        any_https: bool,
    ) -> Result<Option<ClientTls>, ClientTlsError> {
        if !flags.files_given()
            && flags.insecure_transport
            && !flags.insecure_skip_verify
            && !any_https
        {
            return Ok(None);
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientTlsError::Protocol(e.to_string()))?;
        let builder = if flags.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
        } else {
            builder.with_root_certificates(roots(flags.cacert.as_deref())?)
        };
        let mut config = match (&flags.cert, &flags.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certs = certificates(cert)?;
                let pem = read(key)?;
                let key_der =
                    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ClientTlsError::NoKey {
                        path: key.clone(),
                        why: e.to_string(),
                    })?;
                builder.with_client_auth_cert(certs, key_der).map_err(|e| {
                    ClientTlsError::BadKey {
                        path: key.clone(),
                        why: e.to_string(),
                    }
                })?
            }
            (cert, key) => {
                return Err(ClientTlsError::CertWithoutKey {
                    cert: cert.clone().unwrap_or_default(),
                    key: key.clone().unwrap_or_default(),
                });
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(ClientTls {
            config: Arc::new(config),
            for_bare_endpoints: flags.bare_endpoints_use_tls(),
        }))
    }

    /// Whether `endpoint` (as given on the command line) uses TLS.
    pub fn transport(tls: Option<&ClientTls>, endpoint: &str) -> Transport {
        if endpoint.starts_with("https://") {
            Transport::Tls
        } else if endpoint.contains("://") {
            Transport::Plain
        } else if tls.is_some_and(|t| t.for_bare_endpoints) {
            Transport::Tls
        } else {
            Transport::Plain
        }
    }

    /// The rustls configuration (ALPN `h2`), for clients that dial by
    /// themselves (an HTTP client, for example).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// Connects to `host:port` and completes the TLS handshake, naming
    /// `host` as the server; `dial` bounds both.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        dial: Duration,
    ) -> std::io::Result<TokioIo<TlsStream<TcpStream>>> {
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connect = async {
            let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(self.config.clone())
                .connect(name, tcp)
                .await
        };
        match tokio::time::timeout(dial, connect).await {
            Ok(stream) => Ok(TokioIo::new(stream?)),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS dial timed out",
            )),
        }
    }

    /// The connector tonic dials `uri` through (give it to
    /// `Endpoint::connect_with_connector` or `connect_with_connector_lazy`
    /// of an `http://` URL): every connection is TLS to `uri`'s host and
    /// port, each dial bounded by `dial`.
    pub fn connector(
        &self,
        uri: &http::Uri,
        dial: Duration,
    ) -> impl tower::Service<
        http::Uri,
        Response = TokioIo<TlsStream<TcpStream>>,
        Error = std::io::Error,
        Future = impl Future<Output = std::io::Result<TokioIo<TlsStream<TcpStream>>>> + Send,
    > + Clone
    + Send
    + 'static {
        let tls = self.clone();
        let host = uri.host().unwrap_or("localhost").to_string();
        let port = uri.port_u16().unwrap_or(443);
        tower::service_fn(move |_: http::Uri| {
            let (tls, host) = (tls.clone(), host.clone());
            async move { tls.connect(&host, port, dial).await }
        })
    }
}

/// `--insecure-skip-tls-verify`: any server certificate is accepted
/// (signatures are still checked, so the handshake itself is sound).
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> TlsFlags {
        TlsFlags::etcdctl_defaults()
    }

    #[test]
    fn plain_unless_something_asks_for_tls() {
        assert!(ClientTls::from_flags(&flags(), false).unwrap().is_none());
        assert_eq!(ClientTls::transport(None, "h:1"), Transport::Plain);
        assert_eq!(ClientTls::transport(None, "https://h:1"), Transport::Tls);
        let skip = TlsFlags {
            insecure_skip_verify: true,
            ..flags()
        };
        let tls = ClientTls::from_flags(&skip, false).unwrap().unwrap();
        // Skipping verification alone does not turn bare endpoints to TLS.
        assert_eq!(ClientTls::transport(Some(&tls), "h:1"), Transport::Plain);
        let secure = TlsFlags {
            insecure_transport: false,
            insecure_skip_verify: true,
            ..flags()
        };
        assert!(secure.bare_endpoints_use_tls());
        let tls = ClientTls::from_flags(&secure, false).unwrap().unwrap();
        assert_eq!(ClientTls::transport(Some(&tls), "h:1"), Transport::Tls);
        assert_eq!(
            ClientTls::transport(Some(&tls), "http://h:1"),
            Transport::Plain
        );
    }

    #[test]
    fn file_errors_read_like_etcdctl() {
        let only_cert = TlsFlags {
            cert: Some("/c.pem".into()),
            insecure_skip_verify: true,
            ..flags()
        };
        assert_eq!(
            ClientTls::from_flags(&only_cert, false)
                .unwrap_err()
                .to_string(),
            "KeyFile and CertFile must both be present[key: , cert: /c.pem]"
        );
        let missing = TlsFlags {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..flags()
        };
        assert_eq!(
            ClientTls::from_flags(&missing, false)
                .unwrap_err()
                .to_string(),
            "open /nonexistent/ca.pem: no such file or directory"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let path = empty.to_string_lossy().to_string();
        let flags = TlsFlags {
            cacert: Some(path.clone()),
            ..flags()
        };
        assert_eq!(
            ClientTls::from_flags(&flags, false).unwrap_err(),
            ClientTlsError::NoCertificate { path }
        );
    }
}
