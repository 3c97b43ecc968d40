//! The client side: a rustls `ClientConfig` under the same policy (trusting a configured CA
//! file, optionally presenting a client certificate) and a connect over the stack.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sixstack_stack::smoltcp::wire::IpEndpoint;
use sixstack_stack::{Net, TcpStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::material::{load_certs, load_key, load_roots};
use crate::{TlsError, TlsPolicy};

/// What a TLS client is configured with.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// PEM CA certificates the server's chain must lead to.
    pub ca: Option<PathBuf>,
    /// A client certificate chain to present (with `key`).
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
    /// Protocol policy.
    pub policy: TlsPolicy,
    /// ALPN protocols to offer.
    pub alpn: Vec<Vec<u8>>,
}

/// Builds the client configuration (resumption through rustls' in-memory client cache).
pub fn client_config(s: &ClientSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crate::provider::provider();
    let roots = match &s.ca {
        Some(ca) => load_roots(ca)?,
        None => rustls::RootCertStore::empty(),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(s.policy.versions())?
        .with_root_certificates(roots);
    let mut cfg = match (&s.cert, &s.key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert)?;
            for c in &chain {
                crate::CertInfo::from_der(c)?.check_policy()?;
            }
            builder.with_client_auth_cert(chain, load_key(key)?)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::Policy {
                subject: "client certificate".into(),
                reason: "a client certificate needs both cert and key".into(),
            })
        }
    };
    cfg.alpn_protocols = s.alpn.clone();
    Ok(Arc::new(cfg))
}

/// Runs the client handshake on an established stream.
pub async fn handshake<IO>(
    io: IO,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{server_name}: {e}")))?;
    TlsConnector::from(config).connect(name, io).await
}

/// Connects over the stack to `remote` and runs the client handshake for `server_name`.
pub async fn connect(
    net: &Net,
    remote: IpEndpoint,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(net, remote).await?;
    tcp.set_nodelay(true);
    handshake(tcp, server_name, config).await
}

/// A configuration for looking at a server's certificates without trusting them
/// (`sixstack cert info --connect`): the chain is not verified, the handshake signature
/// is. Never used to carry data.
pub fn inspect_config() -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crate::provider::provider();
    let verifier = Arc::new(InspectOnly(provider.clone()));
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TlsPolicy::default().versions())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct InspectOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for InspectOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
