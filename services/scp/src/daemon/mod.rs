//! `sixstack scpd`: the SSH pass-through daemon. It runs on an ordinary Linux host with
//! the kernel's sockets, accepts appliances over mutual TLS (each recognised by its
//! client certificate and held to its allow-list), and for each request runs the system's
//! OpenSSH client to the destination with public-key authentication only. File data and
//! command output pass through memory; nothing of it is written to the daemon's disk.

pub mod allow;
pub mod config;
pub mod exec;
pub mod session;
pub mod ssh;
pub mod transfer;

use std::sync::Arc;

use sixstack_tls::tokio_rustls::TlsAcceptor;
use sixstack_tls::{CertInfo, ClientAuth, ServerFactory, ServerSettings, TlsPolicy};
use tokio::net::TcpListener;

pub use config::DaemonConfig;

use crate::wire::{self, ErrorKind, Failure, Kind};

/// How long a TLS handshake may take.
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why the daemon cannot run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] sixstack_tls::TlsError),
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A daemon with its listeners open, ready to serve.
pub struct Daemon {
    listeners: Vec<TcpListener>,
    acceptor: TlsAcceptor,
    config: Arc<DaemonConfig>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("listen", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Loads the TLS material and opens the listeners (inside a tokio runtime).
    pub async fn bind(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        let acceptor = acceptor(&config)?;
        let mut listeners = Vec::new();
        for addr in &config.listen {
            let l = bind_listener(*addr).map_err(|source| DaemonError::Listen {
                addr: *addr,
                source,
            })?;
            listeners.push(l);
        }
        Ok(Daemon {
            listeners,
            acceptor,
            config: Arc::new(config),
        })
    }

    /// The addresses actually listened on.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until the process ends.
    pub async fn serve(self) {
        let ctx = session::Context {
            ssh: ssh::SshSettings {
                ssh: self.config.ssh.clone(),
                identity: self.config.identity.clone(),
                known_hosts: self.config.known_hosts.clone(),
                connect_timeout: self.config.connect_timeout,
            },
        };
        let ctx = Arc::new(ctx);
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.max_sessions));
        let mut tasks = tokio::task::JoinSet::new();
        for l in self.listeners {
            let acceptor = self.acceptor.clone();
            let config = self.config.clone();
            let ctx = ctx.clone();
            let slots = slots.clone();
            tasks.spawn(async move {
                loop {
                    let (tcp, peer) = match l.accept().await {
                        Ok(c) => c,
                        Err(e) => {
                            log::warn!("scpd: accept: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        log::warn!(
                            "scpd: {peer}: refused, {} sessions already",
                            config.max_sessions
                        );
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let config = config.clone();
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        connection(tcp, peer, &acceptor, &config, &ctx).await;
                        drop(permit);
                    });
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// The TLS acceptor of `config`: its certificate, and appliance certificates required
/// to chain to its client CA. Also what `scpd --check` checks.
pub fn acceptor(config: &DaemonConfig) -> Result<TlsAcceptor, DaemonError> {
    let mut settings = ServerSettings::new(&config.cert, &config.key);
    settings.client_ca = Some(config.client_ca.clone());
    settings.client_auth = ClientAuth::Required;
    settings.policy = TlsPolicy {
        require_tls13: config.require_tls13,
    };
    let factory = ServerFactory::new(settings)?;
    Ok(TlsAcceptor::from(factory.server_config()?))
}

fn bind_listener(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: &TlsAcceptor,
    config: &DaemonConfig,
    ctx: &session::Context,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            println!("scpd: peer={peer} refused: TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            println!("scpd: peer={peer} refused: no TLS handshake within {HANDSHAKE_LIMIT:?}");
            return;
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| CertInfo::from_der(c).ok());
    let Some(cert) = cert else {
        println!("scpd: peer={peer} refused: no usable client certificate");
        return;
    };
    let mut tls = tls;
    let Some(appliance) = allow::identify(&config.appliances, &cert) else {
        println!(
            "scpd: peer={peer} refused: certificate {:?} (SHA-256 {}) is not on the allow-list",
            cert.subject, cert.sha256
        );
        let f = Failure {
            kind: ErrorKind::NotAllowed,
            message: format!(
                "this appliance's certificate ({}, SHA-256 {}) is not on scpd's allow-list",
                cert.subject, cert.sha256
            ),
        };
        let _ = wire::send(&mut tls, Kind::Error, &f).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        return;
    };
    println!(
        "scpd: peer={peer} appliance={} connected ({})",
        appliance.name, cert.subject
    );
    session::serve(tls, appliance, &peer.to_string(), ctx).await;
}
