//! The server side: a [`ServerFactory`] per listener (material, client-certificate verifier,
//! ticket seed) makes one [`ShardAcceptor`] per shard, each with its own rustls
//! `ServerConfig`, its own bounded session cache and its own ticketer, so no lock is
//! shared between shards.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{HandshakeKind, ServerConfig, ServerConnection};
use sixstack_stack::{Counter, Net};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::material::{load_roots, ReloadingResolver};
use crate::tickets::TicketSeed;
use crate::{CertInfo, ClientAuth, TlsError, TlsPolicy};

/// What a TLS listener is configured with.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// Whether client certificates are asked for.
    pub client_auth: ClientAuth,
    /// Protocol policy.
    pub policy: TlsPolicy,
    /// Sessions remembered per shard for ID-based (TLS 1.2) and stateful resumption; 0 turns
    /// the cache off.
    pub session_cache: usize,
    /// Issue session tickets.
    pub tickets: bool,
    /// How often ticket keys rotate (a ticket is accepted for one to two periods).
    pub ticket_rotation: Duration,
    /// ALPN protocols offered, in order of preference.
    pub alpn: Vec<Vec<u8>>,
}

impl ServerSettings {
    /// Settings with the defaults: no client certificates, TLS 1.2 and 1.3, 4096 cached
    /// sessions per shard, tickets rotating every 6 hours.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerSettings {
        ServerSettings {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            client_auth: ClientAuth::None,
            policy: TlsPolicy::default(),
            session_cache: 4096,
            tickets: true,
            ticket_rotation: Duration::from_secs(6 * 3600),
            alpn: Vec::new(),
        }
    }
}

/// The shared, read-only part of a TLS listener; cheap to share between shard threads.
pub struct ServerFactory {
    settings: ServerSettings,
    provider: Arc<CryptoProvider>,
    resolver: Arc<ReloadingResolver>,
    verifier: Arc<dyn ClientCertVerifier>,
    seed: TicketSeed,
}

impl fmt::Debug for ServerFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerFactory")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServerFactory {
    /// Loads and checks the material of `settings`.
    pub fn new(settings: ServerSettings) -> Result<ServerFactory, TlsError> {
        let provider = crate::provider::provider();
        let resolver = Arc::new(ReloadingResolver::new(&settings.cert, &settings.key)?);
        let verifier: Arc<dyn ClientCertVerifier> = match settings.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            auth => {
                let ca = settings
                    .client_ca
                    .as_ref()
                    .ok_or_else(|| TlsError::Policy {
                        subject: settings.cert.display().to_string(),
                        reason: "client certificates are asked for but no client CA is configured"
                            .into(),
                    })?;
                let roots = Arc::new(load_roots(ca)?);
                let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let b = if auth == ClientAuth::Optional {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build().map_err(|e| TlsError::Pem {
                    path: ca.clone(),
                    what: format!("client CA unusable: {e}"),
                })?
            }
        };
        let seed = TicketSeed::new(settings.ticket_rotation)?;
        Ok(ServerFactory {
            settings,
            provider,
            resolver,
            verifier,
            seed,
        })
    }

    /// The listener's certificate resolver (to reload the material).
    pub fn resolver(&self) -> &Arc<ReloadingResolver> {
        &self.resolver
    }

    /// The settings.
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// A rustls configuration with this shard's own session cache and ticketer.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.settings.policy.versions())?
            .with_client_cert_verifier(self.verifier.clone())
            .with_cert_resolver(self.resolver.clone());
        cfg.session_storage = if self.settings.session_cache > 0 {
            ServerSessionMemoryCache::new(self.settings.session_cache)
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        if self.settings.tickets {
            cfg.ticketer = self.seed.ticketer();
        }
        cfg.alpn_protocols = self.settings.alpn.clone();
        Ok(Arc::new(cfg))
    }

    /// The acceptor for one shard, counting into counters of its own.
    pub fn acceptor(&self) -> Result<ShardAcceptor, TlsError> {
        self.acceptor_counting(TlsCounters::default())
    }

    /// The acceptor for the shard of `net`, counting into the shard's published counters
    /// (`sixstack stats`).
    pub fn acceptor_on(&self, net: &Net) -> Result<ShardAcceptor, TlsError> {
        self.acceptor_counting(TlsCounters {
            full: net.counter("tls_full"),
            resumed: net.counter("tls_resumed"),
            refused: net.counter("tls_refused"),
        })
    }

    fn acceptor_counting(&self, counters: TlsCounters) -> Result<ShardAcceptor, TlsError> {
        Ok(ShardAcceptor {
            inner: TlsAcceptor::from(self.server_config()?),
            counters: Rc::new(counters),
        })
    }
}

/// Handshake counters of one shard's acceptor (published as `tls_full`, `tls_resumed`,
/// `tls_refused` when the acceptor is made with [`ServerFactory::acceptor_on`]).
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// Full handshakes completed.
    pub full: Counter,
    /// Resumed handshakes completed.
    pub resumed: Counter,
    /// Handshakes refused (protocol, policy, certificate, or the peer gave up).
    pub refused: Counter,
}

/// One shard's TLS acceptor (clone it into the tasks of the shard).
#[derive(Clone)]
pub struct ShardAcceptor {
    inner: TlsAcceptor,
    counters: Rc<TlsCounters>,
}

impl fmt::Debug for ShardAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardAcceptor")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl ShardAcceptor {
    /// The same acceptor issuing no TLS 1.3 session tickets: for connections that resume
    /// another connection's session and never start one of their own (FTP data
    /// connections), where tickets nobody reads make some clients close with a reset that
    /// discards what they sent.
    pub fn without_tickets(&self) -> ShardAcceptor {
        let mut cfg = (**self.inner.config()).clone();
        cfg.send_tls13_tickets = 0;
        ShardAcceptor {
            inner: TlsAcceptor::from(Arc::new(cfg)),
            counters: self.counters.clone(),
        }
    }

    /// Runs the server handshake on `io`. A refused handshake is logged with the peer and
    /// the reason, counted, and returned as an error; nothing else changes.
    pub async fn accept<IO>(&self, io: IO, peer: &dyn fmt::Display) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = match self.inner.accept(io).await {
            Ok(s) => s,
            Err(e) => {
                self.counters.refused.add(1);
                log::warn!("tls: handshake with {peer} refused: {e}{}", explain(&e));
                return Err(e);
            }
        };
        let conn = stream.get_ref().1;
        // webpki checks the chain; the policy's key rules are checked here.
        if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
            let verdict = CertInfo::from_der(leaf).and_then(|i| i.check_policy());
            if let Err(e) = verdict {
                self.counters.refused.add(1);
                log::warn!("tls: client certificate of {peer} refused: {e}");
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    e.to_string(),
                ));
            }
        }
        match conn.handshake_kind() {
            Some(HandshakeKind::Resumed) => {
                self.counters.resumed.add(1);
            }
            _ => self.counters.full.add(1),
        }
        Ok(stream)
    }

    /// This shard's handshake counters.
    pub fn counters(&self) -> &TlsCounters {
        &self.counters
    }
}

/// An operator's reading of the rustls errors a policy refusal shows up as.
fn explain(e: &io::Error) -> &'static str {
    use rustls::{Error, PeerIncompatible};
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return "";
    };
    match inner {
        Error::PeerIncompatible(PeerIncompatible::SignatureAlgorithmsExtensionRequired)
        | Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired)
        | Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered)
        | Error::PeerIncompatible(PeerIncompatible::Tls12NotOfferedOrEnabled) => {
            " (the client speaks only SSL 3.0, TLS 1.0 or TLS 1.1, which are never accepted)"
        }
        Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic)
        | Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13) => {
            " (no protocol version in common)"
        }
        Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon) => {
            " (the client offers none of the AEAD suites with ECDHE the policy allows, \
             e.g. only CBC or RC4 suites)"
        }
        Error::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon) => {
            " (no ECDHE group in common)"
        }
        Error::NoCertificatesPresented => " (this listener requires a client certificate)",
        _ => "",
    }
}

/// What a connection negotiated, for logs and for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite.
    pub suite: String,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<String>,
    /// The SNI name the client asked for.
    pub sni: Option<String>,
    /// The client's verified certificate chain, leaf first (empty without one).
    pub peer_chain: Vec<CertInfo>,
}

impl SessionInfo {
    /// Reads the facts of an established server connection.
    pub fn of(conn: &ServerConnection) -> SessionInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(v) => format!("{v:?}"),
            None => "-".to_string(),
        };
        SessionInfo {
            version,
            suite: conn.negotiated_cipher_suite().map_or("-".to_string(), |s| {
                s.suite().as_str().unwrap_or("unknown").to_string()
            }),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            sni: conn.server_name().map(str::to_string),
            peer_chain: conn
                .peer_certificates()
                .unwrap_or(&[])
                .iter()
                .filter_map(|c| CertInfo::from_der(c).ok())
                .collect(),
        }
    }
}
