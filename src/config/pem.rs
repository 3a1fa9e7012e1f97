//! obshell's RSA private key, checked at load with a message that says what the file
//! should hold. (Certificate files, `ca_file` and `sslrootcert`, are read by
//! [`crate::tls::read_certs`], which the TLS acceptor shares.)

use std::path::Path;

/// The DER of a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`).
pub(crate) fn read_pkcs8_pem(path: &Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivatePkcs8KeyDer;
    PrivatePkcs8KeyDer::from_pem_file(path)
        .map(|der| der.secret_pkcs8_der().to_vec())
        .map_err(|err| {
            format!(
                "cannot read a PKCS#8 private key (-----BEGIN PRIVATE KEY-----) from {}: {err} (make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`)",
                path.display()
            )
        })
}

/// Why obshell's key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an RSA private key in PKCS#8 (-----BEGIN PRIVATE KEY-----, e.g. from `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`)")]
    NotPkcs8,
    #[error("the RSA key is {0} bits: use 2048 bits or more")]
    TooSmall(usize),
    #[error("generating an RSA key failed")]
    Generate,
}

/// The RSA key of a PKCS#8 DER, checked: 2048 bits or more. The configuration's
/// check at load and obshell's authentication read a key file the same way.
pub fn decrypting_key(pkcs8: &[u8]) -> Result<aws_lc_rs::rsa::PrivateDecryptingKey, KeyError> {
    let key =
        aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| KeyError::NotPkcs8)?;
    match key.key_size_bits() {
        bits if bits < 2048 => Err(KeyError::TooSmall(bits)),
        _ => Ok(key),
    }
}
