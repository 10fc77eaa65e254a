//! TLS to `https://` endpoints, configured as etcdctl's `--cacert`,
//! `--cert`, `--key`, `--insecure-transport` and
//! `--insecure-skip-tls-verify` configure it.
//!
//! This module owns reading the PEM files, the rustls client configuration
//! (ring provider, ALPN `h2`) and the TLS connector tonic dials through.
//! Which endpoints use TLS is decided here too: `https://` ones always,
//! `http://` ones never, and scheme-less ones (`host:port`) when TLS files
//! were given or `--insecure-transport=false`, as etcd's client does.
//! Without `--cacert`, servers are verified against the system's CA store.

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

use crate::error::{CtlError, CtlResult};

/// The TLS flags, as given.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsFlags {
    pub(crate) cacert: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) insecure_transport: bool,
    pub(crate) insecure_skip_verify: bool,
}

/// The client side of TLS, ready to dial.
#[derive(Clone)]
pub(crate) struct ClientTls {
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
pub(crate) enum Transport {
    Plain,
    Tls,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &str) -> CtlResult<Vec<u8>> {
    std::fs::read(Path::new(path)).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        CtlError::bad_args(format!("open {path}: {why}"))
    })
}

fn certificates(path: &str) -> CtlResult<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CtlError::bad_args(format!("{path}: invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(CtlError::bad_args(format!(
            "{path}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

impl ClientTls {
    /// `None` when nothing asks for TLS: no TLS file, `--insecure-transport`
    /// left true, no `--insecure-skip-tls-verify` and no `https://`
    /// endpoint (`any_https`).
    pub(crate) fn from_flags(flags: &TlsFlags, any_https: bool) -> CtlResult<Option<ClientTls>> {
        let files_given = flags.cacert.is_some() || flags.cert.is_some() || flags.key.is_some();
        if !files_given && flags.insecure_transport && !flags.insecure_skip_verify && !any_https {
            return Ok(None);
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| CtlError::bad_args(e.to_string()))?;
        let builder = if flags.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
        } else {
            let mut roots = RootCertStore::empty();
            match &flags.cacert {
                Some(cacert) => {
                    for cert in certificates(cacert)? {
                        roots.add(cert).map_err(|e| {
                            CtlError::bad_args(format!("{cacert}: unusable CA certificate: {e}"))
                        })?;
                    }
                }
                None => {
                    // etcdctl trusts the system's CAs when no --cacert is
                    // given; with none found, no server verifies, as there.
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match (&flags.cert, &flags.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certs = certificates(cert)?;
                let pem = read(key)?;
                let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                    CtlError::bad_args(format!("{key}: no usable private key: {e}"))
                })?;
                builder
                    .with_client_auth_cert(certs, key_der)
                    .map_err(|e| CtlError::bad_args(format!("{key}: {e}")))?
            }
            (cert, key) => {
                return Err(CtlError::bad_args(format!(
                    "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                    key.as_deref().unwrap_or(""),
                    cert.as_deref().unwrap_or("")
                )));
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(ClientTls {
            config: Arc::new(config),
            for_bare_endpoints: files_given || !flags.insecure_transport,
        }))
    }

    /// Whether `endpoint` (as given on the command line) uses TLS.
    pub(crate) fn transport(tls: Option<&ClientTls>, endpoint: &str) -> Transport {
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

    /// Connects to `host:port` and completes the TLS handshake, naming
    /// `host` as the server.
    pub(crate) async fn connect(
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
        TlsFlags {
            insecure_transport: true,
            ..TlsFlags::default()
        }
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
                .message,
            "KeyFile and CertFile must both be present[key: , cert: /c.pem]"
        );
        let missing = TlsFlags {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..flags()
        };
        assert_eq!(
            ClientTls::from_flags(&missing, false).unwrap_err().message,
            "open /nonexistent/ca.pem: no such file or directory"
        );
    }
}
