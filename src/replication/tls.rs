//! TLS for the replication endpoint: mutual authentication against the cluster CA.
//!
//! Every region is both a QUIC server (peers dial it) and a client (it dials
//! peers), with the same certificate on both sides. The TLS layer proves the
//! peer holds a certificate from the cluster CA; [`peer_certificate_names`]
//! then binds that certificate to the region name the peer claims.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use rustls::client::VerifierBuilderError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;

/// ALPN protocol id of the replication protocol; bump on incompatible changes
/// so mismatched versions fail the handshake instead of misparsing frames.
pub const ALPN: &[u8] = b"braid/1";

/// Keep-alive interval: well under NAT/firewall UDP timeouts on a WAN path.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Idle timeout in milliseconds: a peer silent this long (six missed
/// keep-alives) is treated as gone and the link reconnects.
const IDLE_TIMEOUT_MS: u32 = 30_000;

/// Initial congestion window of a replication link (QUIC's default is
/// 14,720 bytes): 1 MiB is about 4 MB/s of pacing on a 240 ms round trip.
const INITIAL_WINDOW: u64 = 1 << 20;

/// Why TLS material could not be loaded or used; messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file has a damaged PEM section.
    #[error("{} is not a valid PEM {what} file: {source}", path.display())]
    BadPem {
        what: &'static str,
        path: PathBuf,
        source: pem::Error,
    },
    /// A certificate file has no CERTIFICATE section.
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The key file has no PRIVATE KEY section.
    #[error("{} holds no private key", .0.display())]
    NoPrivateKey(PathBuf),
    /// The CA certificate cannot serve as a trust anchor.
    #[error("{} holds an unusable CA certificate: {source}", path.display())]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    /// The key is of a type or encoding the crypto provider cannot use.
    #[error("{} holds an unusable private key: {source}", path.display())]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    /// Catches a key and certificate from different regions or generations.
    #[error("private key {} does not belong to certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// Caught at start-up so a wrong CA does not surface as failing handshakes.
    #[error("certificate {} is not valid under the cluster CA {}: {source}", cert.display(), ca.display())]
    NotFromCa {
        cert: PathBuf,
        ca: PathBuf,
        source: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("cannot build client certificate verifier: {0}")]
    Verifier(#[from] VerifierBuilderError),
    /// The TLS configuration lacks what QUIC needs (TLS 1.3, AES-128-GCM).
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(#[from] NoInitialCipherSuite),
    /// The region name to check is not a DNS name, so no certificate can match.
    #[error("{0:?} is not a valid region name (must be a DNS name)")]
    BadRegionName(String),
    /// The connection carries no peer certificate (should not happen with
    /// mutual TLS; reported rather than trusted).
    #[error("peer {0} presented no certificate")]
    NoPeerCertificate(std::net::SocketAddr),
    /// The peer certificate could not be parsed.
    #[error("peer {remote} presented an unparsable certificate: {source}")]
    BadPeerCertificate {
        remote: std::net::SocketAddr,
        source: rustls::Error,
    },
    /// The peer is in the cluster but is not the region it claims to be.
    #[error("peer {remote} has a certificate that is not valid for region {region:?}: {source}")]
    PeerNameMismatch {
        remote: std::net::SocketAddr,
        region: String,
        source: rustls::Error,
    },
}

/// Paths of this region's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Cluster CA certificate(s): the only roots trusted for peers.
    pub ca: PathBuf,
    /// This region's certificate (optionally followed by intermediates).
    pub cert: PathBuf,
    /// This region's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The layout written by [`super::certs::generate`]: `dir/ca.pem`,
    /// `dir/<region>.pem`, `dir/<region>.key`; saves callers spelling it out.
    pub fn in_dir(dir: &Path, region: &str) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{region}.pem")),
            key: dir.join(format!("{region}.key")),
        }
    }
}

/// Loaded, checked TLS identity for one region's QUIC endpoint.
///
/// Loading checks everything that can be checked without a peer (key matches
/// certificate, certificate chains to the CA), so misconfiguration stops
/// start-up with a message naming the file.
pub struct RegionTls {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for RegionTls {
    // Hand-written so the private key never lands in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionTls")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl RegionTls {
    /// Reads and checks the CA, certificate and key named by `files`.
    pub fn load(files: &TlsFiles) -> Result<RegionTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let ca_certs = read_certs(&files.ca, "CA certificate")?;
        let mut roots = RootCertStore::empty();
        for cert in ca_certs {
            roots.add(cert).map_err(|source| TlsError::BadCa {
                path: files.ca.clone(),
                source,
            })?;
        }

        let chain = read_certs(&files.cert, "certificate")?;
        let key = read_key(&files.key)?;

        // Key must match the end-entity certificate.
        match rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(TlsError::KeyMismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                });
            }
            Err(source) => {
                return Err(TlsError::BadKey {
                    path: files.key.clone(),
                    source,
                });
            }
        }

        // Certificate must chain to the CA (this also checks expiry and the
        // serverAuth usage every region needs).
        let not_from_ca = |source| TlsError::NotFromCa {
            cert: files.cert.clone(),
            ca: files.ca.clone(),
            source,
        };
        let parsed = ParsedCertificate::try_from(&chain[0]).map_err(not_from_ca)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &chain[1..],
            UnixTime::now(),
            provider.signature_verification_algorithms.all,
        )
        .map_err(not_from_ca)?;

        tracing::debug!(cert = %files.cert.display(), ca = %files.ca.display(), "loaded region TLS identity");
        Ok(RegionTls {
            provider,
            roots: Arc::new(roots),
            chain,
            key,
        })
    }

    /// quinn server config: TLS 1.3 only, client certificates REQUIRED and
    /// verified against the cluster CA, ALPN [`ALPN`].
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()?;
        let mut tls = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicServerConfig::try_from(tls)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(transport());
        Ok(config)
    }

    /// quinn client config: trusts only the cluster CA, presents this
    /// region's certificate, ALPN [`ALPN`]. Connect with the peer's region
    /// name as server name, so the peer's certificate must name that region.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicClientConfig::try_from(tls)?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(transport());
        Ok(config)
    }
}

/// After a QUIC connection is established (either side), checks that the
/// peer's certificate is valid for `region` as a DNS name (SAN).
///
/// The accepting side uses it to verify the region the peer claims in its
/// handshake message: chain validity is already checked by the TLS
/// verifier, this is the name binding.
pub fn peer_certificate_names(conn: &quinn::Connection, region: &str) -> Result<(), TlsError> {
    let remote = conn.remote_address();
    let name =
        ServerName::try_from(region).map_err(|_| TlsError::BadRegionName(region.to_owned()))?;
    let certs = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoPeerCertificate(remote))?;
    let end_entity = certs.first().ok_or(TlsError::NoPeerCertificate(remote))?;
    let parsed = ParsedCertificate::try_from(end_entity)
        .map_err(|source| TlsError::BadPeerCertificate { remote, source })?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|source| {
        TlsError::PeerNameMismatch {
            remote,
            region: region.to_owned(),
            source,
        }
    })
}

/// Transport tuned for a WAN link between regions.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    // QUIC paces packets at about cwnd / rtt. With the default 14.7 KB
    // initial window, a 240 ms round trip allows only ~75 KB/s, and since
    // a mostly idle sender (app-limited) never grows its window, bursts of
    // segments were paced out over tens of milliseconds. Links between
    // regions are provisioned paths, not the open internet: start wide.
    let mut cubic = quinn::congestion::CubicConfig::default();
    cubic.initial_window(INITIAL_WINDOW);
    transport.congestion_controller_factory(Arc::new(cubic));
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS).into()));
    Arc::new(transport)
}

/// Reads all certificates from a PEM file; at least one is required.
fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, what, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, what, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey(path.to_owned())),
        Err(e) => Err(pem_error(path, "private key", e)),
    }
}

fn pem_error(path: &Path, what: &'static str, e: pem::Error) -> TlsError {
    match e {
        pem::Error::Io(source) => TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        },
        source => TlsError::BadPem {
            what,
            path: path.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::certs;
    use std::fs;
    use std::net::SocketAddr;
    use tempfile::TempDir;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    /// A cluster directory with a CA and certificates for `regions`.
    fn cluster(regions: &[&str]) -> TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
        certs::generate(&names, dir.path(), false).expect("generate");
        dir
    }

    fn load(dir: &TempDir, region: &str) -> RegionTls {
        RegionTls::load(&TlsFiles::in_dir(dir.path(), region)).expect("load")
    }

    fn server(tls: &RegionTls) -> (quinn::Endpoint, SocketAddr) {
        let config = tls.server_config().expect("server config");
        let ep = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr"))
            .expect("bind server");
        let addr = ep.local_addr().expect("local addr");
        (ep, addr)
    }

    fn client(config: quinn::ClientConfig) -> quinn::Endpoint {
        let mut ep =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind client");
        ep.set_default_client_config(config);
        ep
    }

    /// Server side of a rejected handshake: the next incoming connection
    /// must fail to establish, with TLS alert `alert` (sent by either side).
    async fn expect_server_rejects(ep: &quinn::Endpoint, alert: rustls::AlertDescription) {
        let incoming = timeout(WAIT, ep.accept())
            .await
            .expect("client never reached the server")
            .expect("endpoint closed");
        let err = match timeout(WAIT, incoming)
            .await
            .expect("server handshake hung")
        {
            Ok(conn) => panic!(
                "server accepted a connection from {}",
                conn.remote_address()
            ),
            Err(e) => e,
        };
        let code = match &err {
            quinn::ConnectionError::TransportError(e) => e.code,
            quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
            other => panic!("handshake failed for another reason: {other}"),
        };
        assert_eq!(
            code,
            quinn::TransportErrorCode::crypto(alert.into()),
            "wrong failure: {err}"
        );
    }

    /// Client side of a rejected handshake: connecting, or at the latest
    /// the first round trip, must fail.
    async fn expect_client_fails(ep: &quinn::Endpoint, addr: SocketAddr, name: &str) {
        let attempt = async {
            let conn = ep.connect(addr, name).map_err(|e| e.to_string())?.await;
            let conn = conn.map_err(|e| e.to_string())?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(b"ping").await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            recv.read_to_end(64).await.map_err(|e| e.to_string())
        };
        match timeout(WAIT, attempt).await.expect("client hung") {
            Ok(reply) => panic!("client exchanged data: {reply:?}"),
            Err(e) => tracing::debug!("client failed as expected: {e}"),
        }
    }

    #[tokio::test]
    async fn same_ca_regions_connect_and_names_bind() {
        let dir = cluster(&["us", "eu"]);
        let (server_ep, addr) = server(&load(&dir, "eu"));
        let client_ep = client(load(&dir, "us").client_config().expect("client config"));

        // Twice: the reconnect may resume the TLS session, and the peer
        // certificate must still be there to bind names.
        for round in 0..2 {
            let server_side = async {
                let incoming = timeout(WAIT, server_ep.accept())
                    .await
                    .expect("accept hung")
                    .expect("endpoint open");
                let conn = timeout(WAIT, incoming)
                    .await
                    .expect("server handshake hung")
                    .expect("server handshake");
                // The client is "us" and nothing else.
                peer_certificate_names(&conn, "us").expect("client cert names us");
                assert!(matches!(
                    peer_certificate_names(&conn, "eu"),
                    Err(TlsError::PeerNameMismatch { .. })
                ));
                let alpn = conn
                    .handshake_data()
                    .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                    .and_then(|d| d.protocol);
                assert_eq!(alpn.as_deref(), Some(ALPN));
                let (mut send, mut recv) = timeout(WAIT, conn.accept_bi())
                    .await
                    .expect("accept_bi hung")
                    .expect("accept_bi");
                let got = timeout(WAIT, recv.read_to_end(64))
                    .await
                    .expect("read hung")
                    .expect("read");
                assert_eq!(got, b"hello from us");
                send.write_all(b"hello from eu").await.expect("write");
                send.finish().expect("finish");
                // Keep the connection up until the client has read the reply.
                let _ = timeout(WAIT, conn.closed()).await;
            };

            let client_side = async {
                let conn = timeout(WAIT, client_ep.connect(addr, "eu").expect("connect"))
                    .await
                    .expect("client handshake hung")
                    .expect("client handshake");
                peer_certificate_names(&conn, "eu").expect("server cert names eu");
                let err = peer_certificate_names(&conn, "asia").expect_err("not asia");
                assert!(err.to_string().contains("\"asia\""), "{err}");
                assert!(matches!(
                    peer_certificate_names(&conn, "not a region"),
                    Err(TlsError::BadRegionName(_))
                ));

                let (mut send, mut recv) = timeout(WAIT, conn.open_bi())
                    .await
                    .expect("open_bi hung")
                    .expect("open_bi");
                send.write_all(b"hello from us").await.expect("write");
                send.finish().expect("finish");
                let got = timeout(WAIT, recv.read_to_end(64))
                    .await
                    .expect("read hung")
                    .expect("read");
                assert_eq!(got, b"hello from eu", "round {round}");
                conn.close(0u32.into(), b"done");
            };

            tokio::join!(server_side, client_side);
        }
    }

    #[tokio::test]
    async fn client_certificate_from_another_ca_is_refused() {
        let dir = cluster(&["us", "eu"]);
        let rogue = cluster(&["us"]);
        let (server_ep, addr) = server(&load(&dir, "eu"));

        // Trusts the real cluster CA (so it accepts the server) but presents
        // a "us" certificate from another CA: only the server can refuse.
        let genuine = load(&dir, "us");
        let impostor = load(&rogue, "us");
        let tls = RegionTls {
            provider: genuine.provider.clone(),
            roots: genuine.roots.clone(),
            chain: impostor.chain.clone(),
            key: impostor.key.clone_key(),
        };
        let client_ep = client(tls.client_config().expect("client config"));
        tokio::join!(
            expect_server_rejects(&server_ep, rustls::AlertDescription::UnknownCA),
            expect_client_fails(&client_ep, addr, "eu"),
        );

        // The rogue region as configured on its own (trusting its own CA)
        // fails too.
        let client_ep = client(impostor.client_config().expect("client config"));
        tokio::join!(
            // Sent by the client, which does not trust the server's CA.
            expect_server_rejects(&server_ep, rustls::AlertDescription::UnknownCA),
            expect_client_fails(&client_ep, addr, "eu"),
        );
    }

    #[tokio::test]
    async fn client_without_certificate_is_refused() {
        let dir = cluster(&["us", "eu"]);
        let (server_ep, addr) = server(&load(&dir, "eu"));

        let genuine = load(&dir, "us");
        let mut tls = rustls::ClientConfig::builder_with_provider(genuine.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(genuine.roots.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicClientConfig::try_from(tls).expect("quic");
        let client_ep = client(quinn::ClientConfig::new(Arc::new(quic)));

        tokio::join!(
            expect_server_rejects(&server_ep, rustls::AlertDescription::CertificateRequired),
            expect_client_fails(&client_ep, addr, "eu"),
        );
    }

    #[tokio::test]
    async fn wrong_server_name_is_refused() {
        let dir = cluster(&["us", "eu", "asia"]);
        let (server_ep, addr) = server(&load(&dir, "eu"));
        let client_ep = client(load(&dir, "us").client_config().expect("client config"));

        // The server is "eu"; a client expecting "asia" (or "us") must not
        // connect. Quinn only progresses a handshake once the server accepts
        // it, so both sides run together.
        for expected in ["asia", "us"] {
            let client_side = async {
                let result = timeout(WAIT, client_ep.connect(addr, expected).expect("connect"))
                    .await
                    .expect("client handshake hung");
                let err = result.expect_err("connected to the wrong region");
                tracing::debug!("client refused as expected: {err}");
            };
            // The server sees the handshake fail too.
            tokio::join!(
                client_side,
                expect_server_rejects(&server_ep, rustls::AlertDescription::BadCertificate)
            );
        }

        // Sanity: the right name still works on the same endpoints.
        let server_accept = async {
            let incoming = server_ep.accept().await.expect("endpoint open");
            incoming.await.expect("server handshake")
        };
        let (client_conn, _server_conn) = timeout(WAIT, async {
            tokio::join!(
                async { client_ep.connect(addr, "eu").expect("connect").await },
                server_accept
            )
        })
        .await
        .expect("hung");
        client_conn.expect("right name connects");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = cluster(&["us", "eu"]);
        let p = |f: &str| dir.path().join(f);
        let files = |ca: &str, cert: &str, key: &str| TlsFiles {
            ca: p(ca),
            cert: p(cert),
            key: p(key),
        };
        let err_of = |f: TlsFiles| RegionTls::load(&f).expect_err("must fail").to_string();

        // Missing files.
        let e = err_of(files("ca.pem", "missing.pem", "us.key"));
        assert!(
            e.starts_with(&format!(
                "cannot read certificate {}",
                p("missing.pem").display()
            )),
            "{e}"
        );
        let e = err_of(files("nope.pem", "us.pem", "us.key"));
        assert!(
            e.contains("cannot read CA certificate") && e.contains("nope.pem"),
            "{e}"
        );
        let e = err_of(files("ca.pem", "us.pem", "nope.key"));
        assert!(
            e.contains("cannot read private key") && e.contains("nope.key"),
            "{e}"
        );

        // Garbage PEM: plain text, and a PEM block with broken base64.
        fs::write(p("junk.pem"), "this is not a certificate\n").expect("write");
        let e = err_of(files("ca.pem", "junk.pem", "us.key"));
        assert_eq!(
            e,
            format!("{} holds no certificate", p("junk.pem").display())
        );
        fs::write(
            p("broken.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = err_of(files("ca.pem", "broken.pem", "us.key"));
        assert!(
            e.contains("broken.pem") && e.contains("not a valid PEM"),
            "{e}"
        );
        let e = err_of(files("junk.pem", "us.pem", "us.key"));
        assert!(e.contains("junk.pem holds no certificate"), "{e}");

        // Key file without a key (it holds a certificate).
        let e = err_of(files("ca.pem", "us.pem", "us.pem"));
        assert_eq!(e, format!("{} holds no private key", p("us.pem").display()));

        // Key of another region.
        let e = err_of(files("ca.pem", "us.pem", "eu.key"));
        assert!(e.contains("eu.key does not belong to certificate"), "{e}");

        // Certificate from another cluster.
        let other = cluster(&["us"]);
        let err = RegionTls::load(&TlsFiles {
            ca: p("ca.pem"),
            cert: other.path().join("us.pem"),
            key: other.path().join("us.key"),
        })
        .expect_err("foreign cert");
        assert!(matches!(err, TlsError::NotFromCa { .. }), "{err}");
    }
}
