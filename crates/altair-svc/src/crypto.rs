//! The process's rustls crypto provider. Two providers are compiled in (ring, which
//! altair's own TLS uses, and aws-lc-rs, which the ZooKeeper client's TLS brings), so a
//! library that asks rustls for "the" provider (mysql_async, zookeeper-client) finds
//! none unless one is installed: [`use_ring`] installs ring before any of them runs.

/// Installs ring as the process's default provider (a no-op once one is installed).
pub fn use_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_is_installed_and_a_second_call_is_harmless() {
        super::use_ring();
        super::use_ring();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
