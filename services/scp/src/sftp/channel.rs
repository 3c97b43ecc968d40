//! The framed byte channel under an SFTP client: queues encoded requests, reads length-
//! prefixed replies, and routes each reply to the request that waits for it. Replies to
//! other outstanding requests (a server may answer out of order) are parked until asked
//! for; a reply to no outstanding request is a protocol error.

use std::collections::{HashMap, HashSet};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::error::SftpError;
use super::packet::{self, kind, Reply, Request};

/// Queued request bytes are written out once they pass this, or before waiting for a reply.
const WRITE_BATCH: usize = 64 * 1024;

/// Read buffer size: a DATA reply and the next packet headers.
const READ_BUFFER: usize = 64 * 1024;

pub(super) struct Channel<R, W> {
    reader: BufReader<R>,
    writer: W,
    out: Vec<u8>,
    next_id: u32,
    outstanding: HashSet<u32>,
    parked: HashMap<u32, Vec<u8>>,
    broken: bool,
}

impl<R, W> Channel<R, W> {
    /// How many requests wait for replies.
    pub(super) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Channel<R, W> {
    pub(super) fn new(r: R, w: W) -> Self {
        Channel {
            reader: BufReader::with_capacity(READ_BUFFER, r),
            writer: w,
            out: Vec::with_capacity(WRITE_BATCH + super::CHUNK + 64),
            next_id: 0,
            outstanding: HashSet::new(),
            parked: HashMap::new(),
            broken: false,
        }
    }

    /// A fresh request id, not used by any outstanding request.
    pub(super) fn next_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.outstanding.contains(&id) {
                return id;
            }
        }
    }

    /// Queues a request; it is written before the next wait for a reply at the latest.
    pub(super) async fn send(&mut self, req: &Request<'_>) -> Result<(), SftpError> {
        self.check()?;
        req.encode(&mut self.out)?;
        if let Some(id) = req.id() {
            self.outstanding.insert(id);
        }
        if self.out.len() >= WRITE_BATCH {
            let r = self.write_out().await;
            return self.note(r);
        }
        Ok(())
    }

    /// Waits for the reply to request `id` and returns its packet body.
    pub(super) async fn recv(&mut self, id: u32) -> Result<Vec<u8>, SftpError> {
        self.check()?;
        if let Some(body) = self.parked.remove(&id) {
            self.outstanding.remove(&id);
            return Ok(body);
        }
        if !self.outstanding.contains(&id) {
            return Err(SftpError::Protocol(format!(
                "waiting for request {id}, which was never sent"
            )));
        }
        let r = self.recv_routed(id).await;
        self.note(r)
    }

    /// Waits for the VERSION reply to INIT.
    pub(super) async fn recv_version(&mut self) -> Result<Vec<u8>, SftpError> {
        self.check()?;
        let r = async {
            self.write_out().await?;
            let body = self.read_packet().await?;
            if body.first() != Some(&kind::VERSION) {
                let got = Reply::parse(&body).map_or("a malformed packet", |r| r.kind_name());
                return Err(SftpError::Protocol(format!(
                    "expected VERSION in reply to INIT, got {got}"
                )));
            }
            Ok(body)
        }
        .await;
        self.note(r)
    }

    async fn recv_routed(&mut self, id: u32) -> Result<Vec<u8>, SftpError> {
        self.write_out().await?;
        loop {
            let body = self.read_packet().await?;
            let got = match packet::reply_id(&body)? {
                Some(got) => got,
                None => {
                    return Err(SftpError::Protocol(
                        "unexpected VERSION after initialisation".into(),
                    ))
                }
            };
            if got == id {
                self.outstanding.remove(&id);
                return Ok(body);
            }
            if !self.outstanding.contains(&got) || self.parked.contains_key(&got) {
                return Err(SftpError::Protocol(format!(
                    "reply to request id {got}, which is not outstanding"
                )));
            }
            self.parked.insert(got, body);
        }
    }

    async fn write_out(&mut self) -> Result<(), SftpError> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
            self.writer.flush().await?;
        }
        Ok(())
    }

    async fn read_packet(&mut self) -> Result<Vec<u8>, SftpError> {
        let mut prefix = [0; 4];
        self.reader.read_exact(&mut prefix).await?;
        let len = packet::frame_len(prefix)?;
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).await?;
        Ok(body)
    }

    fn check(&self) -> Result<(), SftpError> {
        if self.broken {
            Err(SftpError::Protocol(
                "the SFTP channel failed earlier; start a new session".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Passes `r` through, marking the channel unusable if it is an I/O or protocol
    /// failure: after one, the channel's position in the packet stream is unknown.
    pub(super) fn note<T>(&mut self, r: Result<T, SftpError>) -> Result<T, SftpError> {
        if let Err(SftpError::Io(_) | SftpError::Protocol(_)) = &r {
            self.broken = true;
        }
        r
    }
}
