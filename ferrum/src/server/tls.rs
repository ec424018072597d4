//! TLS certificates: the operator's (reloaded when the files change), or a self-signed one that
//! Ferrum generates once and keeps in its data directory, so a wallet that pinned it never sees
//! it change across restarts and upgrades.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::sync::Shared;
use anyhow::{anyhow, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// File names of the generated certificate in the data directory.
pub(crate) const CERT_FILE: &str = "ferrum.crt";
pub(crate) const KEY_FILE: &str = "ferrum.key";
/// Lifetime of a generated certificate. Electrum re-pins an expired self-signed certificate on
/// its own, but a long life means no wallet ever has to.
const VALIDITY_DAYS: i64 = 365 * 25;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Given by the operator: watched and reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated once into this directory and reused.
    SelfSigned { dir: PathBuf, hostnames: Vec<String> },
}

/// The current TLS configuration, replaced when the files change.
#[derive(Clone)]
pub(crate) struct Tls {
    config: Arc<RwLock<Loaded>>,
    pub(crate) cert_path: PathBuf,
    pub(crate) key_path: PathBuf,
}

struct Loaded {
    config: Arc<ServerConfig>,
    fingerprint: String,
}

/// A certificate's SHA-256 fingerprint: the hex SHA-256 of its DER bytes, the form Electrum's
/// `--serverfingerprint` takes, so a user can pin it or compare it with the certificate their
/// wallet pinned.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(cert: &Path, key: &Path) -> Result<Loaded> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", cert.display()));
    }
    let fingerprint = certs.first().map(|c| fingerprint(c)).unwrap_or_default();
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading private key {}", key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    Ok(Loaded { config: Arc::new(config), fingerprint })
}

/// The fingerprint of the certificate `source` names, read from disk without starting
/// anything: `None` for a self-signed one not generated yet.
pub(crate) fn fingerprint_on_disk(source: &CertSource) -> Result<Option<String>> {
    let path = match source {
        CertSource::Files { cert, .. } => cert.clone(),
        CertSource::SelfSigned { dir, .. } => {
            let path = dir.join(CERT_FILE);
            if !path.exists() {
                return Ok(None);
            }
            path
        }
    };
    let first = CertificateDer::pem_file_iter(&path)
        .with_context(|| format!("reading certificate {}", path.display()))?
        .next()
        .ok_or_else(|| anyhow!("no certificate in {}", path.display()))?
        .with_context(|| format!("parsing certificate {}", path.display()))?;
    Ok(Some(fingerprint(&first)))
}

/// Writes a file readable by the owner only, atomically.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Generates a self-signed certificate (a depth-0 self-signed leaf, which is what Electrum
/// pins) into `dir`, unless one is there already.
pub(crate) fn ensure_self_signed(dir: &Path, hostnames: &[String]) -> Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names: Vec<String> = vec!["localhost".into()];
    names.extend(hostnames.iter().filter(|h| !h.is_empty()).cloned());
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "Ferrum");
    dn.push(rcgen::DnType::CommonName, "Ferrum Electrum server");
    params.distinguished_name = dn;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let cert = params.self_signed(&key).context("signing the certificate")?;
    write_private(&key_path, key.serialize_pem().as_bytes())
        .with_context(|| format!("writing {}", key_path.display()))?;
    std::fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate (kept for future starts)");
    Ok((cert_path, key_path))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Tls {
    pub(crate) fn new(source: &CertSource) -> Result<Tls> {
        let (cert_path, key_path) = match source {
            CertSource::Files { cert, key } => (cert.clone(), key.clone()),
            CertSource::SelfSigned { dir, hostnames } => ensure_self_signed(dir, hostnames)?,
        };
        let config = load(&cert_path, &key_path)?;
        Ok(Tls { config: Arc::new(RwLock::new(config)), cert_path, key_path })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.reading().config.clone())
    }

    /// The SHA-256 fingerprint of the certificate served now.
    pub(crate) fn fingerprint(&self) -> String {
        self.config.reading().fingerprint.clone()
    }

    /// Reloads the files when they change; a bad new pair is logged and the old one kept.
    pub(crate) async fn watch(self, every: Duration) {
        let mut seen = (modified(&self.cert_path), modified(&self.key_path));
        loop {
            tokio::time::sleep(every).await;
            let now = (modified(&self.cert_path), modified(&self.key_path));
            if now == seen {
                continue;
            }
            seen = now;
            match load(&self.cert_path, &self.key_path) {
                Ok(loaded) => {
                    let fingerprint = loaded.fingerprint.clone();
                    *self.config.writing() = loaded;
                    tracing::info!(cert = %self.cert_path.display(), sha256 = %fingerprint, "TLS certificate reloaded");
                }
                Err(e) => tracing::error!("keeping the current TLS certificate: {e:#}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ensure_self_signed(dir.path(), &["example.org".into()]).unwrap();
        let first = std::fs::read(&c).unwrap();
        let (c2, _) = ensure_self_signed(dir.path(), &[]).unwrap();
        assert_eq!(std::fs::read(&c2).unwrap(), first, "the certificate is kept");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        let tls = Tls::new(&CertSource::SelfSigned { dir: dir.path().to_path_buf(), hostnames: vec![] }).unwrap();
        // The digest of the certificate's DER bytes, as `openssl x509 -outform DER | sha256sum`.
        let der = CertificateDer::from_pem_file(&c).unwrap();
        use sha2::Digest;
        assert_eq!(tls.fingerprint(), hex::encode(sha2::Sha256::digest(der.as_ref())));
        assert_eq!(tls.fingerprint().len(), 64);
    }

    #[test]
    fn mismatched_or_missing_files_are_errors() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (ca, _) = ensure_self_signed(a.path(), &[]).unwrap();
        let (_, kb) = ensure_self_signed(b.path(), &[]).unwrap();
        let e = Tls::new(&CertSource::Files { cert: ca.clone(), key: kb }).err().unwrap();
        assert!(format!("{e:#}").contains("do not match"), "{e:#}");
        let e = Tls::new(&CertSource::Files { cert: ca, key: a.path().join("nope") }).err().unwrap();
        assert!(format!("{e:#}").contains("nope"), "{e:#}");
    }
}
