//! The roots outgoing HTTPS trusts (model downloads, webhooks).
//!
//! Mozilla's roots are compiled in, so glagol reaches public hosts from a
//! minimal image with no `ca-certificates`; the system's store is added
//! where one exists (a corporate proxy's CA installed there keeps working,
//! and `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured), and so are the
//! certificates of an operator's PEM file (a private CA). A missing or
//! empty system store is not an error: it only means fewer roots.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Why a CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("CA file {path}: {message}")]
pub struct CaFileError {
    pub path: String,
    pub message: String,
}

/// Bundled roots, then the system's, then those of `ca_file` (PEM, one or
/// more certificates), as DER certificates.
pub fn roots(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let mut roots: Vec<CertificateDer<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
    let system = rustls_native_certs::load_native_certs();
    let found = system.certs.len();
    // One unparsable certificate in a system store must not cost the rest.
    roots.extend(system.certs.into_iter().filter(|c| is_anchor(c)));
    tracing::debug!(
        found,
        unusable = found + webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() - roots.len(),
        errors = system.errors.len(),
        "system trust store"
    );
    if let Some(path) = ca_file {
        let fail = |message: String| CaFileError {
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no PEM certificate in it".into()));
        }
        if let Some(n) = certs.iter().position(|c| !is_anchor(c)) {
            return Err(fail(format!(
                "certificate {} is not a usable CA certificate",
                n + 1
            )));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

fn is_anchor(cert: &CertificateDer<'_>) -> bool {
    webpki::anchor_from_trusted_cert(cert).is_ok()
}
