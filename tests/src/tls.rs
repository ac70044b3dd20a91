//! HTTPS for the test servers: a certificate authority made at test time (rcgen),
//! server certificates it signs, and [`Server::https`], the fault-injecting server of
//! [`crate::server`] with every accepted socket wrapped in rustls. Real sockets, real
//! TLS; nothing is committed and nothing touches the machine's trust store.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::server::{Conn, Server};

/// The system's CA bundle on Debian and its kin, read by the bootstrapper's TLS stack
/// when neither `SSL_CERT_FILE` nor `SSL_CERT_DIR` is set.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A test certificate authority.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA named `name` (its common name, so messages can be told apart).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("self-signed ca");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate as a PEM file at `path` and returns it.
    pub fn write_pem(&self, path: &Path) -> PathBuf {
        fs_err::write(path, &self.pem).expect("write ca pem");
        path.to_path_buf()
    }

    /// A rustls server configuration presenting a certificate for `names` (DNS
    /// names or IP addresses) signed by this CA.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign server");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        Arc::new(cfg)
    }

    /// The system's CA bundle with this CA appended, written to `path`: what the
    /// machine's store would hold had an administrator installed this CA.
    pub fn system_bundle_with(&self, path: &Path) -> PathBuf {
        let mut bundle = fs_err::read_to_string(SYSTEM_BUNDLE).unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(&self.pem);
        fs_err::write(path, bundle).expect("write bundle");
        path.to_path_buf()
    }
}

impl Server {
    /// Serves `root` over HTTPS on a free loopback port with a certificate for
    /// `127.0.0.1` and `localhost` signed by `ca`.
    pub fn https(root: &Path, ca: &TestCa) -> Server {
        Server::https_for(root, ca, &["127.0.0.1", "localhost"])
    }

    /// [`Server::https`] with a certificate for `names` only.
    pub fn https_for(root: &Path, ca: &TestCa, names: &[&str]) -> Server {
        Server::launch(root, Some(ca.server_config(names)))
    }
}

/// A TLS connection the server answers on.
pub(crate) type TlsConn = StreamOwned<ServerConnection, TcpStream>;

impl Conn for TlsConn {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = std::io::Write::flush(self);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// Completes the server side of a TLS handshake on `tcp` (within 10 s).
pub(crate) fn accept(cfg: Arc<ServerConfig>, mut tcp: TcpStream) -> std::io::Result<TlsConn> {
    let mut conn = ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    tcp.set_read_timeout(None)?;
    Ok(StreamOwned::new(conn, tcp))
}
