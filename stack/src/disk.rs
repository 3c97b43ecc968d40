//! File I/O for services, through the shard's own io_uring: a read or write is submitted
//! with the round's other work and completes in a later round, so a slow disk never stalls
//! the shard. The ring is created on first use.

use std::collections::HashMap;
use std::fs::File;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Poll, Waker};

use sixstack_drivers::uring::{Completion, DiskRing, OpId};

use crate::Net;

/// The shard's disk ring and the operations tasks wait for.
#[derive(Debug, Default)]
pub(crate) struct Disk {
    pub(crate) ring: Option<DiskRing>,
    waiting: HashMap<OpId, Waiting>,
    done: Vec<Completion>,
}

#[derive(Debug, Default)]
struct Waiting {
    waker: Option<Waker>,
    result: Option<Completion>,
    abandoned: bool,
}

impl Disk {
    fn ring(&mut self) -> io::Result<&mut DiskRing> {
        if self.ring.is_none() {
            self.ring = Some(DiskRing::new(256)?);
        }
        self.ring
            .as_mut()
            .ok_or_else(|| io::Error::other("no io_uring"))
    }

    /// Submits queued operations and hands finished ones to their tasks.
    pub(crate) fn poll(&mut self) -> bool {
        let Some(ring) = self.ring.as_mut() else {
            return false;
        };
        if let Err(e) = ring.flush() {
            log::warn!("disk io_uring submit: {e}");
        }
        ring.reap(&mut self.done);
        let any = !self.done.is_empty();
        for c in self.done.drain(..) {
            let remove = match self.waiting.get_mut(&c.id) {
                Some(w) if w.abandoned => true,
                Some(w) => {
                    if let Some(k) = w.waker.take() {
                        k.wake();
                    }
                    w.result = Some(c);
                    false
                }
                None => false,
            };
            if remove {
                self.waiting
                    .retain(|_, w| !w.abandoned || w.result.is_some());
            }
        }
        any
    }

    /// Whether the shard may sleep: no completion is waiting to be reaped (see
    /// [`DiskRing::prepare_wait`]).
    pub(crate) fn prepare_wait(&mut self) -> bool {
        self.ring.as_mut().is_none_or(DiskRing::prepare_wait)
    }

    /// The descriptor to sleep on while operations are in flight.
    pub(crate) fn wait_fd(&self) -> Option<std::os::fd::RawFd> {
        self.ring
            .as_ref()
            .filter(|r| r.in_flight() > 0)
            .map(|r| r.wait_fd())
    }
}

/// Marks an operation abandoned if its future is dropped before completion.
struct Guard<'a> {
    net: &'a Net,
    id: OpId,
    finished: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut disk = self.net.inner.disk.borrow_mut();
            if let Some(w) = disk.waiting.get_mut(&self.id) {
                if w.result.is_some() {
                    disk.waiting.remove(&self.id);
                } else {
                    w.abandoned = true;
                }
            }
        }
    }
}

impl Net {
    async fn disk_op(
        &self,
        submit: impl FnOnce(&mut DiskRing) -> io::Result<OpId>,
    ) -> io::Result<Completion> {
        let id = {
            let mut disk = self.inner.disk.borrow_mut();
            let id = submit(disk.ring()?)?;
            disk.waiting.insert(id, Waiting::default());
            id
        };
        let mut guard = Guard {
            net: self,
            id,
            finished: false,
        };
        let c = poll_fn(|cx| {
            let mut disk = self.inner.disk.borrow_mut();
            let Some(w) = disk.waiting.get_mut(&id) else {
                return Poll::Ready(Err(io::Error::other("disk operation lost")));
            };
            match w.result.take() {
                Some(c) => {
                    disk.waiting.remove(&id);
                    Poll::Ready(Ok(c))
                }
                None => {
                    w.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        guard.finished = true;
        c
    }

    /// Reads up to `len` bytes at `offset` of `file`; fewer at the end of the file.
    pub async fn read_at(&self, file: &Arc<File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = file.clone();
        let c = self.disk_op(|r| r.read_at(f, offset, len)).await?;
        let n = c.result?;
        let mut buf = c.buf;
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes `data` at `offset` of `file`; returns how many bytes were written.
    pub async fn write_at(
        &self,
        file: &Arc<File>,
        offset: u64,
        data: Vec<u8>,
    ) -> io::Result<usize> {
        let f = file.clone();
        let c = self.disk_op(|r| r.write_at(f, offset, data)).await?;
        c.result
    }

    /// Writes all of `data` at `offset`, continuing after short writes.
    pub async fn write_all_at(
        &self,
        file: &Arc<File>,
        mut offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.write_at(file, offset, rest.to_vec()).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Flushes `file`'s data and metadata to the disk.
    pub async fn fsync(&self, file: &Arc<File>) -> io::Result<()> {
        let f = file.clone();
        self.disk_op(|r| r.fsync(f)).await?.result.map(drop)
    }
}
