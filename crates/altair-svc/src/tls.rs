//! Mutual TLS (`[tls]`): the certificate files a process serves and dials with, and the
//! identity a certificate names.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use altair_core::authz::Identity;
use altair_core::authz_peer::Expected;
use altair_core::config::{ConfigError, ConfigErrors, TlsConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::dial::NamesExpected;

/// A certificate or key file larger than this is refused (a PEM chain is a few KB).
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// How this process speaks gRPC.
#[derive(Clone)]
pub enum Tls {
    /// `tls.insecure = true`: plaintext, nobody authenticated.
    Insecure,
    Mutual(Arc<Reloadable>),
}

/// One certificate file as seen on disk (see [`Tls::files_stamp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: (u64, u64),
}

/// What `cfg`'s three files look like on disk (see [`Tls::files_stamp`]).
fn stamps(cfg: &TlsConfig) -> Vec<Option<FileStamp>> {
    let stamp = |p: &Option<std::path::PathBuf>| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p.as_ref()?).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode: (m.dev(), m.ino()),
        })
    };
    vec![
        stamp(&cfg.ca_file),
        stamp(&cfg.cert_file),
        stamp(&cfg.key_file),
    ]
}

/// The files `[tls]` names and what was last read from them (`Tls::reload` re-reads).
pub struct Reloadable {
    cfg: TlsConfig,
    current: RwLock<Arc<Material>>,
    /// Held through a reload (SIGHUP and the file watch may both ask): files read
    /// earlier never replace files read later.
    reloading: std::sync::Mutex<()>,
    /// What the files looked like just before the current material was read.
    read_stamp: std::sync::Mutex<Vec<Option<FileStamp>>>,
}

/// The PEM files, read once and checked, and the server configuration made of them.
struct Material {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
    identity: Identity,
    server: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Insecure => f.write_str("Tls::Insecure"),
            Self::Mutual(r) => write!(f, "Tls::Mutual({})", r.material().identity),
        }
    }
}

impl Reloadable {
    fn material(&self) -> Arc<Material> {
        self.current
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Reads a PEM file: a regular file of at most `MAX_PEM_BYTES`.
fn read_pem(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    crate::secret::read_bounded(path, key, MAX_PEM_BYTES)
}

pub(crate) fn certs(
    pem: &[u8],
    key: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(key, format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The altair identity a DER certificate names in its SAN URIs.
pub fn identity_of_der(der: &[u8]) -> Result<Identity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subject alternative names: {e}"))?
        .ok_or("the certificate has no subject alternative names")?;
    Identity::from_uris(san.value.general_names.iter().filter_map(|g| match g {
        x509_parser::extensions::GeneralName::URI(u) => Some(*u),
        _ => None,
    }))
}

/// The server configuration: our chain and key; a client certificate, when presented,
/// must verify against the CA (else the handshake fails). A client without one completes
/// the handshake so that every call can answer UNAUTHENTICATED saying why (the
/// authorization layer refuses it), not an opaque handshake error.
fn server_config(
    ca: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots
            .add(c.clone())
            .map_err(|e| format!("the CA certificate is unusable: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| format!("the CA certificate is unusable: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and the key do not go together: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

impl Material {
    /// The server certificate verifier: the CA's checks, then `expected`'s identity.
    fn verifier(&self, expected: Expected) -> Result<Arc<NamesExpected>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&self.ca) {
            let c = c.map_err(|e| format!("the CA file: bad PEM: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("the CA certificate is unusable: {e}"))?;
        }
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("the CA certificate is unusable: {e}"))?;
        Ok(Arc::new(NamesExpected { inner, expected }))
    }

    /// Reads and checks the files `cfg` names.
    fn read(cfg: &TlsConfig) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut read = |file: &Option<std::path::PathBuf>, key: &str| match file {
            Some(p) => match read_pem(p, key) {
                Ok(b) => Some((b, p.clone())),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => {
                errors.push(ConfigError::new(key, "missing"));
                None
            }
        };
        let ca = read(&cfg.ca_file, "tls.ca_file");
        let cert = read(&cfg.cert_file, "tls.cert_file");
        let key = read(&cfg.key_file, "tls.key_file");
        let (Some((ca, ca_path)), Some((cert, cert_path)), Some((key, key_path))) = (ca, cert, key)
        else {
            return Err(ConfigErrors(errors));
        };
        let check = || -> Result<(Identity, rustls::ServerConfig), ConfigError> {
            let roots = certs(&ca, "tls.ca_file", &ca_path)?;
            let chain = certs(&cert, "tls.cert_file", &cert_path)?;
            // The key's content never reaches an error: only that it did not parse.
            let private = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
                ConfigError::new(
                    "tls.key_file",
                    format!("{} holds no PEM private key", key_path.display()),
                )
            })?;
            let identity = identity_of_der(&chain[0]).map_err(|e| {
                ConfigError::new("tls.cert_file", format!("{}: {e}", cert_path.display()))
            })?;
            let server = server_config(&roots, chain, private)
                .map_err(|e| ConfigError::new("tls.cert_file", e))?;
            Ok((identity, server))
        };
        let (identity, server) = check().map_err(|e| ConfigErrors(vec![e]))?;
        Ok(Self {
            ca,
            cert,
            key,
            identity,
            server: Arc::new(server),
        })
    }
}

impl Tls {
    /// Reads and checks the files `[tls]` names (call after the config validated).
    pub fn load(cfg: &TlsConfig) -> Result<Self, ConfigErrors> {
        if cfg.insecure {
            return Ok(Self::Insecure);
        }
        let read_stamp = stamps(cfg);
        let material = Material::read(cfg)?;
        Ok(Self::Mutual(Arc::new(Reloadable {
            cfg: cfg.clone(),
            current: RwLock::new(Arc::new(material)),
            reloading: std::sync::Mutex::new(()),
            read_stamp: std::sync::Mutex::new(read_stamp),
        })))
    }

    /// Reads the files again (a renewed certificate): new connections, served and dialled,
    /// use them. Files that do not load, or a certificate naming another identity, leave
    /// the current ones in force. `Ok(false)` when insecure.
    pub fn reload(&self) -> Result<bool, String> {
        let Self::Mutual(r) = self else {
            return Ok(false);
        };
        let _one_at_a_time = r.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = stamps(&r.cfg);
        let new = Material::read(&r.cfg).map_err(|e| e.to_string())?;
        let old = r.material();
        if new.identity != old.identity {
            return Err(format!(
                "the new certificate names {}, this process is {}",
                new.identity, old.identity
            ));
        }
        match r.current.write() {
            Ok(mut m) => *m = Arc::new(new),
            Err(p) => *p.into_inner() = Arc::new(new),
        }
        *r.read_stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(true)
    }

    /// What the files `[tls]` names look like on disk — per file its size, modification
    /// time and inode (a symlink followed, so a swapped Kubernetes secret mount counts),
    /// `None` for one that cannot be read: when this changes, a renewed certificate may
    /// be there to load. `None` when insecure.
    pub fn files_stamp(&self) -> Option<Vec<Option<FileStamp>>> {
        match self {
            Self::Insecure => None,
            Self::Mutual(r) => Some(stamps(&r.cfg)),
        }
    }

    /// [`Self::files_stamp`] as it was just before the certificate in force was read
    /// (a change since then is one to load). `None` when insecure.
    pub fn loaded_stamp(&self) -> Option<Vec<Option<FileStamp>>> {
        match self {
            Self::Insecure => None,
            Self::Mutual(r) => Some(
                r.read_stamp
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            ),
        }
    }

    /// How often the certificate files are looked at for a change (`tls.reload_interval_ms`);
    /// `None`: never, or insecure.
    pub fn reload_interval(&self) -> Option<std::time::Duration> {
        match self {
            Self::Insecure => None,
            Self::Mutual(r) => r.cfg.reload_interval(),
        }
    }

    /// Who this process is, from its own certificate.
    pub fn identity(&self) -> Option<Identity> {
        match self {
            Self::Insecure => None,
            Self::Mutual(r) => Some(r.material().identity.clone()),
        }
    }

    pub fn is_insecure(&self) -> bool {
        matches!(self, Self::Insecure)
    }

    /// The acceptor for one incoming connection, with the current certificate.
    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        match self {
            Self::Insecure => None,
            Self::Mutual(r) => Some(tokio_rustls::TlsAcceptor::from(r.material().server.clone())),
        }
    }

    /// An acceptor for HTTPS (the web console): the same certificate and client
    /// verification, offering HTTP/1.1 instead of gRPC's h2.
    pub fn http_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        match self {
            Self::Insecure => None,
            Self::Mutual(r) => {
                let mut cfg = (*r.material().server).clone();
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
            }
        }
    }

    /// An endpoint for `host:port`: `http` when insecure; else `https` with our
    /// certificate, the server's verified against the CA, for the address dialled, and
    /// naming the identity `expected` (`crate::dial`). `Err` says what is wrong with the
    /// address or the files.
    pub fn endpoint(&self, address: &str, expected: Expected) -> Result<Endpoint, String> {
        match self {
            Self::Insecure => Endpoint::from_shared(format!("http://{address}"))
                .map_err(|e| format!("bad address {address:?}: {e}")),
            Self::Mutual(r) => {
                let m = r.material();
                Endpoint::from_shared(format!("https://{address}"))
                    .map_err(|e| format!("bad address {address:?}: {e}"))?
                    .tls_config_with_verifier(
                        ClientTlsConfig::new()
                            .identity(tonic::transport::Identity::from_pem(&m.cert, &m.key)),
                        m.verifier(expected)?,
                    )
                    .map_err(|e| format!("TLS for {address}: {e}"))
            }
        }
    }

    /// Logs what the process runs with; insecure mode warns at every start.
    pub fn log_start(&self) {
        match self.identity() {
            None => tracing::warn!(
                "tls.insecure = true: gRPC is plaintext and unauthenticated; anyone who reaches this port can act"
            ),
            Some(id) => tracing::info!(identity = %id, "mutual TLS on"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_small_regular_files_are_refused_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = read_pem(dir.path(), "tls.ca_file").expect_err("a directory");
        assert!(e.to_string().starts_with("tls.ca_file:"), "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; (MAX_PEM_BYTES + 1) as usize]).expect("write");
        let e = read_pem(&big, "tls.cert_file").expect_err("too big");
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = read_pem(Path::new("/dev/zero"), "tls.key_file").expect_err("a device");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_key_that_does_not_parse_is_refused_without_its_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).expect("write");
            Some(p)
        };
        let cfg = TlsConfig {
            ca_file: pem("ca.pem", "not a certificate"),
            cert_file: pem("c.pem", "not a certificate"),
            key_file: pem("k.pem", "SECRET-KEY-MATERIAL"),
            ..TlsConfig::default()
        };
        let e = Tls::load(&cfg).expect_err("bad files").to_string();
        assert!(e.contains("tls.ca_file"), "{e}");
        assert!(!e.contains("SECRET-KEY-MATERIAL"), "{e}");
        assert!(
            Tls::load(&TlsConfig {
                insecure: true,
                ..TlsConfig::default()
            })
            .expect("insecure")
            .is_insecure()
        );
    }
}
