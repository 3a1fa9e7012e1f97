//! PEM files the configuration names: CA certificates (`ca_file` of DBSS and
//! PostgreSQL's `sslrootcert`) and obshell's RSA private key, each checked at load
//! with a message that says what the file should hold.

use rustls::pki_types::CertificateDer;
use std::path::Path;

/// The certificates of a PEM file, for `ca_file`: checked at load, read again by the
/// client whenever it is (re)built, so a fixed file is picked up.
pub fn read_ca_file(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read CA certificates from {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            file.display()
        ));
    }
    Ok(certs)
}

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
