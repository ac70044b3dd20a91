//! The HTTP client of one command, and what its failures mean to a person.
//!
//! reqwest with rustls and ring. Trust roots are `rustls-platform-verifier`'s: on
//! Linux (and the other Unixes but macOS) `rustls-native-certs`, which reads
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` *instead of* the system store when either is
//! set, and otherwise the store `openssl-probe` finds (on Debian
//! `/etc/ssl/certs/ca-certificates.crt` and `/etc/ssl/certs/`); on macOS and Windows
//! the OS verifier. When no trust root can be loaded at all, the client is still
//! made (http:// and file:// work) and every https:// request fails saying why.
//! Proxies are reqwest's system proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`
//! and `NO_PROXY` (or their lower-case spellings; none at all when `REQUEST_METHOD`
//! is set, as under CGI), plus the OS settings on macOS and Windows; loopback
//! addresses are *not* exempt. The same hyper-util matcher reqwest uses names the
//! proxy a failed request went through.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::proxy::matcher::Matcher;
use rustls::CertificateError;
use url::Url;

use super::retry;
use crate::env;
use crate::error::{Error, Result};

/// The client and what is needed to explain its failures.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) http: reqwest::Client,
    proxies: Arc<Matcher>,
    roots: Arc<Roots>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("proxies", &self.proxies)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// Where the trust roots come from, as messages say it.
#[derive(Debug)]
enum Roots {
    System,
    /// `SSL_CERT_FILE=...` and/or `SSL_CERT_DIR=...`.
    Env(String),
    /// None could be loaded: from where, and why.
    Missing {
        from: String,
        why: String,
    },
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::System => f.write_str("the system's trust store"),
            Roots::Env(v) => write!(f, "only those of {v}"),
            Roots::Missing { from, why } => {
                write!(f, "none, as none could be loaded from {from}: {why}")
            }
        }
    }
}

impl Roots {
    fn from_env() -> Roots {
        let set: Vec<String> = [env::SSL_CERT_FILE, env::SSL_CERT_DIR]
            .iter()
            .filter_map(|v| std::env::var_os(v).map(|p| format!("{v}={}", p.to_string_lossy())))
            .collect();
        // Only rustls-native-certs reads them; macOS and Windows verify with the OS.
        if set.is_empty() || cfg!(any(target_vendor = "apple", windows)) {
            Roots::System
        } else {
            Roots::Env(set.join(" and "))
        }
    }
}

impl Client {
    pub(super) fn new() -> Result<Client> {
        // reqwest is built without a default crypto provider; use ring's. Failing
        // here only means a provider was installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(env::number(env::READ_TIMEOUT, 30)))
                .redirect(retry::redirect_policy())
                .user_agent(concat!("peft-bootstrap/", env!("CARGO_PKG_VERSION")))
        };
        let internal = |e: reqwest::Error| {
            Error::Internal(format!("cannot build the HTTP client: {}", chain(&e)))
        };
        let roots = Roots::from_env();
        let (http, roots) = match builder().build() {
            Ok(c) => (c, roots),
            // The platform verifier refuses to start with no root at all (no CA
            // bundle installed, or SSL_CERT_FILE naming nothing usable). Keep http://
            // and file:// working; every https:// request then fails and says why.
            Err(e) => {
                let from = match roots {
                    Roots::Env(v) => v,
                    _ => "the system's trust store".into(),
                };
                let missing = Roots::Missing {
                    from,
                    why: chain(&e),
                };
                tracing::debug!("no trust roots: {missing}");
                let c = builder()
                    .tls_certs_only(Vec::new())
                    .build()
                    .map_err(internal)?;
                (c, missing)
            }
        };
        Ok(Client {
            http,
            proxies: Arc::new(Matcher::from_system()),
            roots: Arc::new(roots),
        })
    }

    /// What a failed request to `url` means: a refused certificate said plainly
    /// with where trust roots come from, or the error and its causes; and the proxy
    /// it went through, if any.
    pub(super) fn explain(&self, e: &reqwest::Error, url: &Url) -> String {
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let mut s = match tls_error(e) {
            Some(rustls::Error::InvalidCertificate(c)) => {
                format!("{} (trusted roots: {})", certificate(c, &host), self.roots)
            }
            Some(t) => format!("{TLS_FAILED} with {host}: {t}"),
            None => chain(e),
        };
        if let Some(p) = self.proxy(url) {
            s.push_str(&format!(" ({THROUGH_PROXY} {p})"));
        }
        s
    }

    /// The proxy requests for `url` go through, and the setting that chose it.
    pub(super) fn proxy(&self, url: &Url) -> Option<String> {
        let uri: http::Uri = url.as_str().parse().ok()?;
        let hit = self.proxies.intercept(&uri)?;
        let vars = match url.scheme() {
            "https" => [env::HTTPS_PROXY, "https_proxy", env::ALL_PROXY, "all_proxy"],
            _ => [env::HTTP_PROXY, "http_proxy", env::ALL_PROXY, "all_proxy"],
        };
        let from = vars
            .into_iter()
            .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
            .unwrap_or("the system's proxy settings");
        Some(format!("{}, set by {from}", hit.uri()))
    }

    /// What a failed status says, and the proxy it came through.
    pub(super) fn status_error(&self, resp: &reqwest::Response, url: &Url) -> String {
        let mut s = retry::status_error(resp);
        if let Some(p) = self.proxy(url) {
            s.push_str(&format!(" ({THROUGH_PROXY} {p})"));
        }
        s
    }

    /// The network error for `url`, with a hint that fits `detail`.
    pub(super) fn network_error(&self, url: String, detail: String) -> Error {
        let hint = hint(&detail, &self.roots);
        Error::Network { url, detail, hint }
    }
}

const NOT_TRUSTED: &str = "is not trusted";
const WRONG_NAME: &str = "is not valid for the name asked for";
const OUT_OF_DATE: &str = "is expired or not yet valid";
const TLS_FAILED: &str = "the TLS handshake failed";
const THROUGH_PROXY: &str = "through the proxy";

/// A refused certificate in words.
fn certificate(c: &CertificateError, host: &str) -> String {
    use CertificateError as C;
    let what = format!("the TLS certificate of {host}");
    match c {
        C::UnknownIssuer => format!(
            "{what} {NOT_TRUSTED}: it is not signed by a certificate authority among \
             the trusted roots (UnknownIssuer)"
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("{what} {WRONG_NAME}: {c}")
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            format!("{what} {OUT_OF_DATE}: {c}")
        }
        _ => format!("{what} was refused: {c}"),
    }
}

/// What a person can do about the failure `detail` describes.
fn hint(detail: &str, roots: &Roots) -> Option<String> {
    let hint = if detail.contains(NOT_TRUSTED) {
        match roots {
            Roots::Missing { .. } => {
                "install the system's CA certificates (the \
                ca-certificates package), or set SSL_CERT_FILE to a readable PEM bundle"
            }
            _ if cfg!(any(target_vendor = "apple", windows)) => {
                "if the repository uses a private certificate authority, add it to the \
                 system's trust store"
            }
            _ => {
                "if the repository uses a private certificate authority, add it to the \
                 system's trust store (e.g. update-ca-certificates), or set SSL_CERT_FILE \
                 to a PEM bundle holding it (SSL_CERT_FILE replaces the system store: \
                 include the system's certificates too)"
            }
        }
    } else if detail.contains(WRONG_NAME) {
        "use the host name the certificate was issued for in --manifest-url, or fix the \
         server's certificate"
    } else if detail.contains(OUT_OF_DATE) {
        "check this computer's date and time; if they are right, the server's \
         certificate must be renewed"
    } else if detail.contains(retry::DEADLINE_PASSED) {
        return Some(format!(
            "run it again to resume where it stopped (the bytes received are kept), or \
             give a slow link more time with {} and {}",
            env::DEADLINE_SECS,
            env::DEADLINE_RATE_BYTES
        ));
    } else if detail.contains(THROUGH_PROXY) {
        return Some(format!(
            "check the proxy ({}, {}, {}), or list the repository's host in {} to reach \
             it directly",
            env::HTTPS_PROXY,
            env::HTTP_PROXY,
            env::ALL_PROXY,
            env::NO_PROXY
        ));
    } else {
        return None;
    };
    Some(hint.to_string())
}

/// The TLS error under `e`, wherever it sits in the chain of causes: rustls errors
/// travel inside `io::Error`s (hyper-rustls wraps tokio-rustls's in another), whose
/// `source` skips what they wrap.
fn tls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref());
    if let Some(inner) = wrapped
        && let Some(t) = tls_error(inner)
    {
        return Some(t);
    }
    e.source().and_then(tls_error)
}

/// Whether `e` is a refused certificate: asking again cannot help.
/// Whether an error of `send` may go away if asked again: a refused redirect, a
/// refused certificate or a request that cannot be built will not.
pub(super) fn transient(e: &reqwest::Error) -> bool {
    !(e.is_redirect() || e.is_builder() || is_certificate_error(e))
}

pub(super) fn is_certificate_error(e: &reqwest::Error) -> bool {
    matches!(tls_error(e), Some(rustls::Error::InvalidCertificate(_)))
}

/// An error with its causes, so "error sending request" says "connection refused".
pub(super) fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rustls_error_is_found_inside_an_io_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        // As hyper-rustls hands it on: wrapped once more.
        let io = std::io::Error::other(io);
        let found = tls_error(&io).expect("found");
        assert!(matches!(
            found,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(tls_error(&plain).is_none());
    }

    #[test]
    fn each_certificate_problem_gets_its_hint() {
        let host = "example.org:443";
        let system = Roots::System;
        let untrusted = certificate(&CertificateError::UnknownIssuer, host);
        let h = hint(&untrusted, &system).expect("hint");
        assert!(h.contains("SSL_CERT_FILE") || cfg!(any(target_vendor = "apple", windows)));
        let missing = Roots::Missing {
            from: "SSL_CERT_FILE=/nowhere".into(),
            why: "no certificates".into(),
        };
        assert!(
            hint(&untrusted, &missing)
                .expect("hint")
                .contains("ca-certificates")
        );
        let name = certificate(&CertificateError::NotValidForName, host);
        assert!(hint(&name, &system).expect("hint").contains("host name"));
        let old = certificate(&CertificateError::Expired, host);
        assert!(hint(&old, &system).expect("hint").contains("date and time"));
        let late = format!("{}; 60 bytes are kept", retry::DEADLINE_PASSED);
        assert!(
            hint(&late, &system)
                .expect("hint")
                .contains("PEFT_DEADLINE_SECS")
        );
        let proxied = format!("connection refused ({THROUGH_PROXY} http://p:1/)");
        assert!(hint(&proxied, &system).expect("hint").contains("NO_PROXY"));
        assert_eq!(hint("connection refused", &system), None);
    }
}
