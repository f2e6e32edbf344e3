//! A throwaway certificate authority for a test fleet or the sandbox: every altair
//! process gets a certificate naming its identity (a SAN URI, see
//! `altair_core::authz`) and the addresses it serves on, signed by a CA made at start.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::{Error, Result, io_err};

/// The three PEM files a `[tls]` section names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The `[tls]` section of a config using these files.
    pub fn section(&self) -> String {
        format!(
            "\n[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            self.ca.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}

/// A CA and the directory its certificates are written to.
pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pki({})", self.dir.display())
    }
}

fn tls_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Command {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}

impl Pki {
    /// A new CA (`<dir>/ca.pem`; its key stays in memory).
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(tls_err("CA key"))?;
        let ca = CertifiedIssuer::self_signed(params, key).map_err(tls_err("CA certificate"))?;
        let ca_file = dir.join("ca.pem");
        write(&ca_file, &ca.pem())?;
        Ok(Self {
            dir: dir.to_owned(),
            ca,
            ca_file,
        })
    }

    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Where [`Self::issue`] writes the files named `file` (nothing is written).
    pub fn files(&self, file: &str) -> TlsFiles {
        TlsFiles {
            ca: self.ca_file.clone(),
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        }
    }

    /// A certificate for `uri` (`altair://agent/c1/db1`), valid for client and server
    /// use, naming `ips` (and `localhost`) as the addresses it serves on. Files:
    /// `<dir>/<file>.pem` and `<dir>/<file>.key` (mode 0600).
    pub fn issue(&self, file: &str, uri: &str, ips: &[IpAddr]) -> Result<TlsFiles> {
        let what = format!("certificate {file}");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).map_err(tls_err(&what))?;
        params.distinguished_name.push(DnType::CommonName, file);
        params
            .subject_alt_names
            .push(SanType::URI(uri.try_into().map_err(tls_err(&what))?));
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(tls_err(&what))?;
        let cert = params.signed_by(&key, &self.ca).map_err(tls_err(&what))?;
        let files = self.files(file);
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        set_private(&files.key)?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io_err(format!("write {}", path.display())))
}

fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("chmod {}", path.display())))
}
