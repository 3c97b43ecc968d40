//! The async driver: connects over a [`Transport`], runs the [`Dialogue`] with a time-out on
//! every step, and upgrades to TLS where the dialogue says so.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use sixstack_tls::client::{client_config, ClientSettings};
use sixstack_tls::rustls::ClientConfig;
use sixstack_transport::{timeout, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::delivery::Delivery;
use crate::dialogue::{Dialogue, Plan, Step};
use crate::error::MailError;
use crate::reply::{Reply, ReplyParser};
use crate::request::{MailRequest, RequestError, TlsMode};
use crate::stream::MailStream;
use crate::{dotstuff, limits};

/// How long sixstack waits for the answer to QUIT once the message is accepted.
const QUIT_WAIT: Duration = Duration::from_secs(5);

struct Conn<'t, T: Transport> {
    t: &'t T,
    stream: MailStream<T::Stream>,
    parser: ReplyParser,
    buf: Vec<u8>,
}

fn timed_out(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

impl<T: Transport> Conn<'_, T> {
    async fn read_reply(
        &mut self,
        step: &'static str,
        limit: Duration,
    ) -> Result<Reply, MailError> {
        let t = self.t;
        let work = async {
            loop {
                if !self.buf.is_empty() {
                    let (used, reply) = self
                        .parser
                        .feed(&self.buf)
                        .map_err(|source| MailError::BadReply { step, source })?;
                    self.buf.drain(..used);
                    if let Some(r) = reply {
                        return Ok(r);
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|source| MailError::Connection { step, source })?;
                if n == 0 {
                    return Err(MailError::Connection {
                        step,
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection",
                        ),
                    });
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        timeout(t, limit, step, work)
            .await
            .map_err(|_| MailError::Timeout { step, after: limit })?
    }

    async fn write(
        &mut self,
        bytes: &[u8],
        step: &'static str,
        limit: Duration,
    ) -> Result<(), MailError> {
        let t = self.t;
        let work = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match timeout(t, limit, step, work).await {
            Err(_) => Err(MailError::Timeout { step, after: limit }),
            Ok(Err(source)) => Err(MailError::Connection { step, source }),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn upgrade(
        &mut self,
        name: &str,
        config: Arc<ClientConfig>,
        limit: Duration,
    ) -> Result<(), MailError> {
        let MailStream::Plain(tcp) = std::mem::replace(&mut self.stream, MailStream::Closed) else {
            return Err(MailError::Protocol {
                step: "STARTTLS",
                detail: "TLS is already on".into(),
            });
        };
        let hs = sixstack_tls::client::handshake(tcp, name, config);
        match timeout(self.t, limit, "TLS handshake", hs).await {
            Err(_) => Err(MailError::Timeout {
                step: "TLS handshake",
                after: limit,
            }),
            Ok(Err(e)) => Err(MailError::Tls {
                server: name.to_string(),
                reason: e.to_string(),
            }),
            Ok(Ok(tls)) => {
                self.stream = MailStream::Tls(Box::new(tls));
                Ok(())
            }
        }
    }

    /// QUIT, without caring for the answer: the outcome is already known.
    async fn quit(&mut self) {
        if matches!(self.stream, MailStream::Closed) {
            return;
        }
        if self.write(b"QUIT\r\n", "QUIT", QUIT_WAIT).await.is_ok() {
            let _ = self.read_reply("QUIT", QUIT_WAIT).await;
        }
        let _ = timeout(self.t, QUIT_WAIT, "close", self.stream.shutdown()).await;
    }
}

/// Sends the message of `req` over `t`: resolves and connects, TLS as asked, AUTH, every
/// recipient, the data; returns what the server said for each recipient. Fails when no
/// recipient was accepted or any step goes wrong (see [`MailError::exit_code`]).
pub async fn send<T: Transport>(t: &T, req: &MailRequest) -> Result<Delivery, MailError> {
    req.validate()?;
    let rendered = req.message.render(crate::date::now());
    let data = dotstuff::stuff(&rendered.bytes);
    if data.len() > req.max_message {
        return Err(RequestError::MessageTooLarge {
            size: data.len(),
            limit: req.max_message,
        }
        .into());
    }
    let config = match req.tls.mode {
        TlsMode::None => None,
        _ => Some(client_config(&ClientSettings {
            ca: req.tls.ca.clone(),
            cert: req.tls.cert.clone(),
            key: req.tls.key.clone(),
            ..ClientSettings::default()
        })?),
    };
    let addr =
        sixstack_transport::resolve(&req.host, req.port).map_err(|source| MailError::Resolve {
            host: req.host.clone(),
            source,
        })?;
    let to = req.timeouts;
    let tcp = t.connect(addr, to.connect).await.map_err(|source| {
        if timed_out(&source) {
            MailError::Timeout {
                step: "connect",
                after: to.connect,
            }
        } else {
            MailError::Connect { addr, source }
        }
    })?;
    let ehlo = req.ehlo.resolve(t.local_addr(&tcp).ok());
    log::info!(
        "mail: connected to {addr} over {} ({:?}), EHLO {ehlo}",
        t.name(),
        req.tls.mode
    );
    let mut conn = Conn {
        t,
        stream: MailStream::Plain(tcp),
        parser: ReplyParser::new(),
        buf: Vec::new(),
    };
    if let (TlsMode::Implicit, Some(cfg)) = (req.tls.mode, &config) {
        conn.upgrade(&req.tls.server_name, cfg.clone(), to.tls)
            .await?;
    }
    let plan = Plan {
        server: req.host.clone(),
        ehlo,
        tls: req.tls.mode,
        auth: req.auth,
        credentials: req.credentials.clone(),
        from: req.message.from.address.clone(),
        recipients: req
            .message
            .recipients()
            .into_iter()
            .map(|(m, k)| (m.address.clone(), k))
            .collect(),
        data,
        message_id: rendered.message_id,
        timeouts: to,
    };
    let mut d = Dialogue::new(plan);
    let result = drive(&mut conn, &mut d, req, config).await;
    match &result {
        Ok(_) => conn.quit().await,
        Err(e)
            if e.reply().is_some()
                || matches!(
                    e,
                    MailError::AllRecipientsRefused(_)
                        | MailError::StartTlsNotOffered { .. }
                        | MailError::AuthNotOffered { .. }
                        | MailError::TooLarge { .. }
                ) =>
        {
            conn.quit().await
        }
        Err(_) => {}
    }
    result
}

async fn drive<T: Transport>(
    conn: &mut Conn<'_, T>,
    d: &mut Dialogue,
    req: &MailRequest,
    config: Option<Arc<ClientConfig>>,
) -> Result<Delivery, MailError> {
    loop {
        let (step, limit) = d.waiting_for();
        let reply = conn.read_reply(step, limit).await?;
        log::debug!("mail: S: {reply}");
        let mut next = d.on_reply(reply)?;
        if let Step::StartTls = next {
            if !conn.buf.is_empty() || !conn.parser.is_idle() {
                // Bytes sent before the handshake would be taken as if they came over TLS.
                return Err(MailError::Protocol {
                    step: "STARTTLS",
                    detail: "the server sent data after its 220".into(),
                });
            }
            let Some(cfg) = config.clone() else {
                return Err(MailError::Protocol {
                    step: "STARTTLS",
                    detail: "no TLS configuration".into(),
                });
            };
            conn.upgrade(&req.tls.server_name, cfg, req.timeouts.tls)
                .await?;
            log::debug!("mail: TLS with {}", req.tls.server_name);
            next = d.tls_started();
        }
        let (step, limit) = d.waiting_for();
        match next {
            Step::Send(c) => {
                log::debug!("mail: C: {}", c.shown());
                conn.write(c.bytes(), step, limit).await?;
            }
            Step::Data => {
                let block = d.timeouts().data_block;
                for chunk in d.data().chunks(limits::DATA_CHUNK) {
                    conn.write(chunk, "message data", block).await?;
                }
            }
            Step::Finish(delivery) => {
                log::info!(
                    "mail: {} accepted for {} of {} recipients: {}",
                    delivery.message_id,
                    delivery.accepted().count(),
                    delivery.recipients.len(),
                    delivery.reply
                );
                return Ok(delivery);
            }
            Step::StartTls => {
                return Err(MailError::Protocol {
                    step,
                    detail: "STARTTLS twice".into(),
                })
            }
        }
    }
}
