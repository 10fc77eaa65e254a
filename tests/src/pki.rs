//! Throwaway PKI for TLS tests: a CA, a server certificate for `localhost`
//! and `127.0.0.1`, and a client certificate, written as PEM files (rcgen),
//! with the flags that hand them to a member or a client.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files of one throwaway CA, a server certificate for `localhost`
/// and `127.0.0.1`, and a client certificate.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Makes a CA and its certificates, written to `dir` as `<name>-*.pem`.
    pub fn generate(dir: &Path, name: &str) -> Result<Pki> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let write = |file: &str, pem: String| -> Result<PathBuf> {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, pem)?;
            Ok(path)
        };
        let leaf =
            |sans: Vec<String>, usages: Vec<ExtendedKeyUsagePurpose>| -> Result<(String, String)> {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::new(sans)?;
                params.distinguished_name.push(DnType::CommonName, name);
                params.extended_key_usages = usages;
                let cert = params.signed_by(&key, &ca)?;
                Ok((cert.pem(), key.serialize_pem()))
            };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            // etcd's gateway dials its own gRPC port with the server's
            // certificate, so it must be good for client auth too.
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )?;
        let (client_cert, client_key) = leaf(vec![], vec![ExtendedKeyUsagePurpose::ClientAuth])?;
        Ok(Pki {
            ca: write("ca.pem", ca.pem())?,
            server_cert: write("server.pem", server_cert)?,
            server_key: write("server-key.pem", server_key)?,
            client_cert: write("client.pem", client_cert)?,
            client_key: write("client-key.pem", client_key)?,
        })
    }

    /// `--cert-file` and `--key-file` of the server certificate.
    pub fn server_flags(&self) -> Vec<String> {
        vec![
            "--cert-file".into(),
            path(&self.server_cert),
            "--key-file".into(),
            path(&self.server_key),
        ]
    }

    /// `--cacert=<the CA>` for a client.
    /// The `--peer-*` flags: the server certificate (good for client auth
    /// too, and naming 127.0.0.1) serves the peer listener and identifies
    /// the member to its peers.
    pub fn peer_flags(&self, client_cert_auth: bool) -> Vec<String> {
        let mut flags = vec![
            "--peer-cert-file".into(),
            path(&self.server_cert),
            "--peer-key-file".into(),
            path(&self.server_key),
            "--peer-trusted-ca-file".into(),
            path(&self.ca),
        ];
        if client_cert_auth {
            flags.push("--peer-client-cert-auth".into());
        }
        flags
    }

    pub fn cacert(&self) -> String {
        format!("--cacert={}", path(&self.ca))
    }

    /// `--cert=` and `--key=` of the client certificate.
    pub fn client_identity(&self) -> [String; 2] {
        [
            format!("--cert={}", path(&self.client_cert)),
            format!("--key={}", path(&self.client_key)),
        ]
    }
}

/// A path as a flag value.
pub fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
