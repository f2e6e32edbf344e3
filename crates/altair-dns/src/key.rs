//! TSIG keys. The secret never appears in `Debug` output or in errors.

use std::fmt;

use base64::Engine;
use hickory_proto::rr::{Name, TSigner, rdata::tsig::TsigAlgorithm};

use crate::{DnsError, Result};

/// Clock skew allowed between us and the server, seconds (BIND's default is 300).
const FUDGE_S: u16 = 300;

#[derive(Clone)]
pub struct TsigKey {
    name: String,
    algorithm: String,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// `secret_base64` as in BIND's `key { secret "..."; }` clause.
    pub fn new(name: &str, algorithm: &str, secret_base64: &str) -> Result<Self> {
        let bad = |reason: &str| DnsError::BadKey {
            key_name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_base64.trim())
            .map_err(|_| bad("the secret is not valid base64"))?;
        if secret.is_empty() {
            return Err(bad("the secret is empty"));
        }
        let key = Self {
            name: name.to_owned(),
            algorithm: algorithm.to_owned(),
            secret,
        };
        key.signer()?;
        Ok(key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn signer(&self) -> Result<TSigner> {
        let bad = |reason: String| DnsError::BadKey {
            key_name: self.name.clone(),
            reason,
        };
        let algorithm = match self.algorithm.as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => return Err(bad(format!("unsupported algorithm {other:?}"))),
        };
        let name = Name::from_ascii(&self.name).map_err(|e| bad(format!("bad key name: {e}")))?;
        TSigner::new(self.secret.clone(), algorithm, name, FUDGE_S)
            .map_err(|e| bad(format!("cannot sign with it: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_never_printed() {
        let key = TsigKey::new("k", "hmac-sha256", "c2VjcmV0LXZhbHVlLTEyMzQ=").expect("valid");
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        let err = TsigKey::new("k", "hmac-sha256", "not base64!!").expect_err("bad");
        assert!(!err.to_string().contains("not base64!!"), "{err}");
        assert!(TsigKey::new("k", "hmac-md5", "c2VjcmV0").is_err());
    }
}
