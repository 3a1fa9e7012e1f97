//! obshell's RSA private key, checked at load with a message that says what the file
//! should hold. (Certificate files, `ca_file` and `sslrootcert`, are read by
//! [`crate::tls::read_certs`], which the TLS acceptor shares.)

use std::path::Path;

/// The DER of a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`).
pub(super) fn read_pkcs8_pem(path: &Path) -> Result<Vec<u8>, String> {
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
