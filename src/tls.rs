//! TLS pieces the server side (`--web.config.file`) and the clients (DBSS, PostgreSQL)
//! share: one crypto provider, one reader of PEM certificate files, and the verifier
//! of "encrypt, but do not check who answers". A leaf: it uses nothing of the crate.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider of every TLS connection, served or made: AWS-LC, the library
/// obshell's RSA decryption needs anyway (`api::obshell`), so that one C crypto
/// library is built rather than two (ring and AWS-LC).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of a PEM file (a CA bundle, a server's chain), with a message
/// that says what the file should hold when it holds none. Read again whenever a
/// client or acceptor is built, so a fixed file is picked up.
pub fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            file.display()
        ));
    }
    Ok(certs)
}

/// The verifier of DBSS's `insecure_skip_verify` and PostgreSQL's `sslmode` `prefer`
/// and `require`. Any certificate is accepted, but the handshake's
/// signatures are still checked (the connection is encrypted, to an unknown peer).
#[derive(Debug)]
pub struct NoVerification(pub Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let err = read_certs(&file).unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = read_certs(&dir.path().join("missing.pem")).unwrap_err();
        assert!(err.starts_with("cannot read certificates from"), "{err}");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&file, cert.cert.pem()).unwrap();
        assert_eq!(read_certs(&file).unwrap().len(), 1);
    }
}
