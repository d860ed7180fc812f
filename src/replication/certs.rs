//! Cluster certificates: one CA and one certificate per region.
//!
//! Regions authenticate each other with mutual TLS, so every region needs a
//! certificate naming it (SAN DNS = region name) signed by a CA that all
//! regions trust. This module makes that material so operators do not have
//! to drive `openssl` by hand.
//!
//! Layout of a certificate directory: `ca.pem`, `ca.key`, and
//! `<region>.pem` / `<region>.key` per region. Keys are PKCS#8 PEM, written
//! with mode 0600.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How long generated certificates stay valid: ~10 years, since rotating a
/// cluster's certificates is manual.
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// How far back `not_before` is set, to tolerate clock skew between regions.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// Prefix of the cluster CA's common name; the rest is derived from the CA
/// key (see [`ca_params`]).
const CA_COMMON_NAME: &str = "Braid cluster CA";

/// File stem of the CA files; reserved, so no region may use it.
const CA_STEM: &str = "ca";

/// Why certificate generation failed; messages name the file involved.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Nothing to do is almost certainly a caller mistake.
    #[error("no regions given")]
    NoRegions,
    /// The region name cannot be a file stem and a DNS name at once.
    #[error("invalid region name {name:?}: {reason}")]
    BadRegion { name: String, reason: &'static str },
    /// Two regions would share files (names are compared ignoring case, like DNS).
    #[error("region {0:?} given twice")]
    DuplicateRegion(String),
    /// Refusing to clobber existing keys protects a live cluster.
    #[error("{} already exists (pass overwrite to replace it)", .0.display())]
    Exists(PathBuf),
    /// The output directory could not be made.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    /// A certificate or key could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    /// An existing CA file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The CA certificate file holds no certificate.
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The CA certificate file is damaged.
    #[error("{} is not valid PEM: {source}", path.display())]
    BadPem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    /// The CA key file holds no key rcgen can sign with.
    #[error("{} holds no usable private key: {source}", path.display())]
    BadKey { path: PathBuf, source: rcgen::Error },
    /// `generate_with_ca` could not produce a certificate that chains to the CA.
    #[error("{} and {} do not form a braid CA: {reason}", ca.display(), key.display())]
    CaMismatch {
        ca: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// rcgen refused the parameters or key generation failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// Generates a cluster CA and one certificate + key per region into `out`
/// (created if missing): `ca.pem`, `ca.key`, `<region>.pem`, `<region>.key`.
///
/// Refuses to overwrite existing files unless `overwrite`, checking all of
/// them before writing any. Each region certificate is signed by the CA,
/// has CN and SAN DNS = the region name, EKU serverAuth + clientAuth (a
/// region is both server and client) and is valid for ~10 years. Returns the
/// paths written.
pub fn generate(
    regions: &[String],
    out: &Path,
    overwrite: bool,
) -> Result<Vec<PathBuf>, CertError> {
    check_regions(regions)?;
    let mut targets = vec![out.join("ca.pem"), out.join("ca.key")];
    targets.extend(region_paths(regions, out));
    check_targets(&targets, overwrite)?;

    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(&ca_key);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    create_dir(out)?;
    let mut written = Vec::with_capacity(targets.len());
    write_file(
        &out.join("ca.pem"),
        ca_cert.pem().as_bytes(),
        false,
        overwrite,
        &mut written,
    )?;
    write_file(
        &out.join("ca.key"),
        issuer.key().serialize_pem().as_bytes(),
        true,
        overwrite,
        &mut written,
    )?;
    write_regions(regions, &issuer, out, overwrite, &mut written)?;
    tracing::info!(dir = %out.display(), regions = regions.len(), "generated cluster CA and region certificates");
    Ok(written)
}

/// Generates region certificates into `out` signed by an EXISTING CA
/// (`ca.pem` + `ca.key` in `ca_dir`), so a region can join a running cluster
/// without re-keying the others.
///
/// The CA must have been made by [`generate`]: its subject name is rebuilt
/// from the key rather than parsed. Every new certificate is verified
/// against `ca.pem` before anything is written, so a foreign CA or a key
/// that does not match the certificate is reported instead of producing
/// useless files. The CA files are not copied into `out`.
pub fn generate_with_ca(
    regions: &[String],
    ca_dir: &Path,
    out: &Path,
    overwrite: bool,
) -> Result<Vec<PathBuf>, CertError> {
    check_regions(regions)?;
    let targets: Vec<PathBuf> = region_paths(regions, out).collect();
    check_targets(&targets, overwrite)?;

    let ca_pem_path = ca_dir.join("ca.pem");
    let ca_key_path = ca_dir.join("ca.key");
    let ca_der = load_first_cert(&ca_pem_path)?;
    let key_pem = fs::read_to_string(&ca_key_path).map_err(|source| CertError::Read {
        path: ca_key_path.clone(),
        source,
    })?;
    let ca_key = KeyPair::from_pem(&key_pem).map_err(|source| CertError::BadKey {
        path: ca_key_path.clone(),
        source,
    })?;
    let issuer = Issuer::new(ca_params(&ca_key), ca_key);

    // Sign and verify everything in memory first; write only if all chain.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_der)
        .map_err(|e| mismatch(&ca_pem_path, &ca_key_path, e.to_string()))?;
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let mut signed = Vec::with_capacity(regions.len());
    for region in regions {
        let (cert, key) = sign_region(region, &issuer)?;
        let parsed = rustls::server::ParsedCertificate::try_from(cert.der())
            .map_err(|e| mismatch(&ca_pem_path, &ca_key_path, e.to_string()))?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            UnixTime::now(),
            algs.all,
        )
        .map_err(|e| mismatch(&ca_pem_path, &ca_key_path, e.to_string()))?;
        signed.push((region, cert, key));
    }

    create_dir(out)?;
    let mut written = Vec::with_capacity(targets.len());
    for (region, cert, key) in signed {
        write_region(region, &cert, &key, out, overwrite, &mut written)?;
    }
    tracing::info!(ca = %ca_dir.display(), dir = %out.display(), regions = regions.len(), "generated region certificates for existing CA");
    Ok(written)
}

/// Parameters of the cluster CA.
///
/// The subject is a function of the CA key alone, so [`generate_with_ca`]
/// can rebuild the issuer name from `ca.key` without an X.509 parser (rcgen
/// parses certificates only with its `x509-parser` feature). The key-derived
/// suffix keeps the CAs of different clusters distinct by name, so a foreign
/// certificate is reported as an unknown issuer, not a bad signature.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String = params
        .key_identifier(key)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Braid");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{CA_COMMON_NAME} {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    params
}

/// Parameters of one region's certificate.
fn region_params(region: &str) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Braid");
    params.distinguished_name.push(DnType::CommonName, region);
    params.subject_alt_names = vec![SanType::DnsName(region.try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams) {
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + VALIDITY).into();
}

/// Makes a fresh key and a CA-signed certificate for `region`.
fn sign_region(
    region: &str,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(rcgen::Certificate, KeyPair), CertError> {
    let key = KeyPair::generate()?;
    let cert = region_params(region)?.signed_by(&key, issuer)?;
    Ok((cert, key))
}

fn write_regions(
    regions: &[String],
    issuer: &Issuer<'_, KeyPair>,
    out: &Path,
    overwrite: bool,
    written: &mut Vec<PathBuf>,
) -> Result<(), CertError> {
    for region in regions {
        let (cert, key) = sign_region(region, issuer)?;
        write_region(region, &cert, &key, out, overwrite, written)?;
    }
    Ok(())
}

fn write_region(
    region: &str,
    cert: &rcgen::Certificate,
    key: &KeyPair,
    out: &Path,
    overwrite: bool,
    written: &mut Vec<PathBuf>,
) -> Result<(), CertError> {
    let cert_path = out.join(format!("{region}.pem"));
    let key_path = out.join(format!("{region}.key"));
    write_file(&cert_path, cert.pem().as_bytes(), false, overwrite, written)?;
    write_file(
        &key_path,
        key.serialize_pem().as_bytes(),
        true,
        overwrite,
        written,
    )
}

fn region_paths<'a>(regions: &'a [String], out: &'a Path) -> impl Iterator<Item = PathBuf> + 'a {
    regions
        .iter()
        .flat_map(|r| [out.join(format!("{r}.pem")), out.join(format!("{r}.key"))])
}

/// Checks each region name is usable as a file stem and as a DNS name, and
/// that no two collide.
fn check_regions(regions: &[String]) -> Result<(), CertError> {
    if regions.is_empty() {
        return Err(CertError::NoRegions);
    }
    let mut seen: Vec<String> = Vec::with_capacity(regions.len());
    for name in regions {
        check_region_name(name)?;
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(CertError::DuplicateRegion(name.clone()));
        }
        seen.push(lower);
    }
    Ok(())
}

/// Validates one region name: `[A-Za-z0-9_-]+` that is also a DNS name
/// rustls accepts as a server name (peers connect using it).
pub(crate) fn check_region_name(name: &str) -> Result<(), CertError> {
    let bad = |reason| CertError::BadRegion {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad("only letters, digits, '_' and '-' are allowed"));
    }
    if name.eq_ignore_ascii_case(CA_STEM) {
        return Err(bad("reserved for the cluster CA files"));
    }
    // The charset is fine; rustls also wants <= 63 chars, no leading or
    // trailing '-', and not numeric (it would look like an IP address).
    match ServerName::try_from(name) {
        Ok(ServerName::DnsName(_)) => Ok(()),
        _ => Err(bad(
            "not a valid DNS name (at most 63 characters, no leading or trailing '-', not a number)",
        )),
    }
}

/// Fails on the first existing target unless `overwrite`.
fn check_targets(targets: &[PathBuf], overwrite: bool) -> Result<(), CertError> {
    if overwrite {
        return Ok(());
    }
    match targets.iter().find(|p| p.exists()) {
        Some(p) => Err(CertError::Exists(p.clone())),
        None => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

/// Writes one file; private keys get mode 0600 even when replacing a file
/// that had looser permissions.
fn write_file(
    path: &Path,
    contents: &[u8],
    private: bool,
    overwrite: bool,
    written: &mut Vec<PathBuf>,
) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        // Also closes the race with a file appearing after check_targets.
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(if private { 0o600 } else { 0o644 });
        let mut file = opts.open(path).map_err(err)?;
        if private {
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)?;
    }
    #[cfg(not(unix))]
    {
        let _ = private;
        let mut file = opts.open(path).map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)?;
    }
    written.push(path.to_owned());
    Ok(())
}

/// Reads the first certificate from a PEM file.
fn load_first_cert(path: &Path) -> Result<CertificateDer<'static>, CertError> {
    let mut iter = CertificateDer::pem_file_iter(path).map_err(|e| pem_read_error(path, e))?;
    match iter.next() {
        Some(Ok(cert)) => Ok(cert),
        Some(Err(e)) => Err(pem_read_error(path, e)),
        None => Err(CertError::NoCertificate(path.to_owned())),
    }
}

fn pem_read_error(path: &Path, e: rustls::pki_types::pem::Error) -> CertError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => CertError::Read {
            path: path.to_owned(),
            source,
        },
        rustls::pki_types::pem::Error::NoItemsFound => CertError::NoCertificate(path.to_owned()),
        source => CertError::BadPem {
            path: path.to_owned(),
            source,
        },
    }
}

fn mismatch(ca: &Path, key: &Path, reason: String) -> CertError {
    CertError::CaMismatch {
        ca: ca.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::tls::{RegionTls, TlsFiles};

    fn names(regions: &[&str]) -> Vec<String> {
        regions.iter().map(|r| r.to_string()).collect()
    }

    /// The region certificate in `dir` is valid for exactly `region`.
    fn assert_names(dir: &Path, region: &str, other: &str) {
        let der = load_first_cert(&dir.join(format!("{region}.pem"))).expect("load cert");
        let parsed = rustls::server::ParsedCertificate::try_from(&der).expect("parse");
        let ok = ServerName::try_from(region).expect("name");
        let bad = ServerName::try_from(other).expect("name");
        rustls::client::verify_server_name(&parsed, &ok).expect("cert names its region");
        assert!(rustls::client::verify_server_name(&parsed, &bad).is_err());
    }

    #[test]
    fn generate_writes_ca_and_region_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("certs"); // does not exist yet
        let written = generate(&names(&["us", "eu_west-1"]), &out, false).expect("generate");
        let expected: Vec<PathBuf> = ["ca.pem", "ca.key", "us.pem", "us.key"]
            .iter()
            .chain(&["eu_west-1.pem", "eu_west-1.key"])
            .map(|f| out.join(f))
            .collect();
        assert_eq!(written, expected);

        #[cfg(unix)]
        for f in ["ca.key", "us.key", "eu_west-1.key"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(out.join(f))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }

        assert_names(&out, "us", "eu_west-1");
        assert_names(&out, "eu_west-1", "us");
        // Each region's files load and chain to the CA.
        for r in ["us", "eu_west-1"] {
            RegionTls::load(&TlsFiles::in_dir(&out, r)).expect("load");
        }
    }

    #[test]
    fn generate_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        generate(&names(&["us"]), tmp.path(), false).expect("first");
        let before = fs::read(tmp.path().join("ca.pem")).expect("read");

        let err = generate(&names(&["eu", "us"]), tmp.path(), false).expect_err("must refuse");
        assert!(matches!(&err, CertError::Exists(p) if p == &tmp.path().join("ca.pem")));
        assert!(err.to_string().contains("ca.pem already exists"), "{err}");
        // Nothing was written by the refused run.
        assert!(!tmp.path().join("eu.pem").exists());
        assert_eq!(fs::read(tmp.path().join("ca.pem")).expect("read"), before);

        generate(&names(&["us"]), tmp.path(), true).expect("overwrite");
        assert_ne!(fs::read(tmp.path().join("ca.pem")).expect("read"), before);
    }

    #[test]
    fn bad_region_names_are_rejected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for bad in [
            "", "us east", "us.east", "../us", "ü", "-us", "us-", "ca", "CA", "123", "0x1f",
        ] {
            let err = generate(&names(&[bad]), tmp.path(), false).expect_err(bad);
            assert!(matches!(err, CertError::BadRegion { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("invalid region name"), "{err}");
        }
        let long = "a".repeat(64);
        assert!(generate(std::slice::from_ref(&long), tmp.path(), false).is_err());
        assert!(matches!(
            generate(&names(&["us", "US"]), tmp.path(), false),
            Err(CertError::DuplicateRegion(_))
        ));
        assert!(matches!(
            generate(&[], tmp.path(), false),
            Err(CertError::NoRegions)
        ));
        // Nothing was written by any rejected call.
        assert_eq!(fs::read_dir(tmp.path()).expect("ls").count(), 0);
    }

    #[test]
    fn generate_with_ca_signs_for_the_existing_cluster() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cluster = tmp.path().join("cluster");
        generate(&names(&["us"]), &cluster, false).expect("cluster");
        let joiner = tmp.path().join("joiner");
        let written = generate_with_ca(&names(&["asia"]), &cluster, &joiner, false).expect("join");
        assert_eq!(
            written,
            vec![joiner.join("asia.pem"), joiner.join("asia.key")]
        );
        assert_names(&joiner, "asia", "us");
        // The new certificate is accepted under the cluster's CA.
        RegionTls::load(&TlsFiles {
            ca: cluster.join("ca.pem"),
            cert: joiner.join("asia.pem"),
            key: joiner.join("asia.key"),
        })
        .expect("joiner loads against the cluster CA");

        let err = generate_with_ca(&names(&["asia"]), &cluster, &joiner, false)
            .expect_err("must refuse to overwrite");
        assert!(matches!(err, CertError::Exists(_)), "{err}");
    }

    #[test]
    fn generate_with_ca_rejects_mismatched_ca_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, b, mixed) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("m"),
        );
        generate(&names(&["us"]), &a, false).expect("a");
        generate(&names(&["us"]), &b, false).expect("b");
        fs::create_dir(&mixed).expect("mkdir");
        fs::copy(a.join("ca.pem"), mixed.join("ca.pem")).expect("copy");
        fs::copy(b.join("ca.key"), mixed.join("ca.key")).expect("copy");

        let out = tmp.path().join("out");
        let err = generate_with_ca(&names(&["eu"]), &mixed, &out, false).expect_err("mismatch");
        assert!(matches!(err, CertError::CaMismatch { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        assert!(!out.exists(), "nothing written on mismatch");

        let err = generate_with_ca(&names(&["eu"]), &tmp.path().join("nope"), &out, false)
            .expect_err("missing CA");
        assert!(matches!(err, CertError::Read { .. }), "{err}");
        assert!(err.to_string().contains("nope/ca.pem"), "{err}");

        // A key file that holds a certificate instead of a key.
        fs::copy(a.join("ca.pem"), mixed.join("ca.key")).expect("copy");
        let err = generate_with_ca(&names(&["eu"]), &mixed, &out, false).expect_err("no key");
        assert!(matches!(err, CertError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");
    }
}
