//! A shard's io_uring for disk I/O: services read and write files through it so a slow
//! disk never stalls the shard's loop. Each operation owns its buffer and a handle on its
//! file until the kernel completes it; the shard submits once per round, reaps completions
//! each round, and sleeps on the ring's eventfd with its link.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

use crate::wait::{wait_readable, Doorbell};

/// Identifies one submitted operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub u64);

/// A finished operation: the byte count (or error) and the buffer it used.
#[derive(Debug)]
pub struct Completion {
    /// Which operation.
    pub id: OpId,
    /// Bytes read or written (0 for fsync), or the error.
    pub result: io::Result<usize>,
    /// The buffer (for reads: the first `result` bytes hold the data).
    pub buf: Vec<u8>,
}

struct Op {
    generation: u32,
    // Kept alive until the completion: the kernel reads or writes this memory and this fd.
    buf: Vec<u8>,
    _file: Arc<File>,
}

/// The ring, its eventfd and the operations in flight.
pub struct DiskRing {
    ring: IoUring,
    bell: Doorbell,
    ops: Vec<Option<Op>>,
    free: Vec<u32>,
    generation: u32,
    in_flight: usize,
    unsubmitted: bool,
}

impl std::fmt::Debug for DiskRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskRing")
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

fn user_data(slot: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(slot)
}

impl DiskRing {
    /// A ring with room for `entries` operations in flight (rounded up to a power of two).
    pub fn new(entries: u32) -> io::Result<DiskRing> {
        let entries = entries.clamp(8, 4096).next_power_of_two();
        let ring = IoUring::new(entries)?;
        let bell = Doorbell::new()?;
        ring.submitter().register_eventfd(bell.fd())?;
        Ok(DiskRing {
            ring,
            bell,
            ops: Vec::new(),
            free: Vec::new(),
            generation: 0,
            in_flight: 0,
            unsubmitted: false,
        })
    }

    /// Operations submitted and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The descriptor that polls readable when completions are waiting.
    pub fn wait_fd(&self) -> RawFd {
        self.bell.fd()
    }

    fn slot(&mut self, op: Op) -> (u32, u32) {
        let generation = op.generation;
        match self.free.pop() {
            Some(s) => {
                self.ops[s as usize] = Some(op);
                (s, generation)
            }
            None => {
                self.ops.push(Some(op));
                ((self.ops.len() - 1) as u32, generation)
            }
        }
    }

    fn push(
        &mut self,
        file: Arc<File>,
        buf: Vec<u8>,
        make: impl FnOnce(types::Fd, *mut u8, u32) -> io_uring::squeue::Entry,
    ) -> io::Result<OpId> {
        let len = u32::try_from(buf.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "buffer over 4 GiB"))?;
        self.generation = self.generation.wrapping_add(1);
        let fd = types::Fd(file.as_raw_fd());
        let (slot, generation) = self.slot(Op {
            generation: self.generation,
            buf,
            _file: file,
        });
        let ptr = match self.ops[slot as usize].as_mut() {
            Some(op) => op.buf.as_mut_ptr(),
            None => return Err(io::Error::other("io_uring slot vanished")),
        };
        let entry = make(fd, ptr, len).user_data(user_data(slot, generation));
        // SAFETY: the entry's buffer is the Vec kept in `ops[slot]` (its heap memory does not
        // move when the Vec value moves) and its fd is the File kept there too; both stay
        // until the completion for this user_data is reaped (or, at drop, are leaked).
        let pushed = unsafe { self.ring.submission().push(&entry) }.is_ok();
        if !pushed {
            self.ring.submit()?;
            // SAFETY: as above.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                self.ops[slot as usize] = None;
                self.free.push(slot);
                return Err(io::Error::other("io_uring submission queue full"));
            }
        }
        self.in_flight += 1;
        self.unsubmitted = true;
        Ok(OpId(user_data(slot, generation)))
    }

    /// Queues a read of up to `len` bytes at `offset`.
    pub fn read_at(&mut self, file: Arc<File>, offset: u64, len: usize) -> io::Result<OpId> {
        self.push(file, vec![0u8; len], |fd, ptr, len| {
            opcode::Read::new(fd, ptr, len).offset(offset).build()
        })
    }

    /// Queues a write of `data` at `offset`.
    pub fn write_at(&mut self, file: Arc<File>, offset: u64, data: Vec<u8>) -> io::Result<OpId> {
        self.push(file, data, |fd, ptr, len| {
            opcode::Write::new(fd, ptr.cast_const(), len)
                .offset(offset)
                .build()
        })
    }

    /// Queues an fsync of the file's data and metadata.
    pub fn fsync(&mut self, file: Arc<File>) -> io::Result<OpId> {
        self.push(file, Vec::new(), |fd, _, _| opcode::Fsync::new(fd).build())
    }

    /// Submits what was queued since the last call (one `io_uring_enter`).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.unsubmitted {
            self.ring.submit()?;
            self.unsubmitted = false;
        }
        Ok(())
    }

    /// Before sleeping on [`DiskRing::wait_fd`]: clears the eventfd, then says whether the
    /// sleep is safe (nothing completed since the last reap; what completes after this
    /// rings the eventfd again). Reaping leaves the eventfd alone: a busy shard would pay a
    /// `read` a round for it.
    pub fn prepare_wait(&mut self) -> bool {
        self.bell.drain();
        self.ring.completion().is_empty()
    }

    /// Moves finished operations into `out`.
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut done = Vec::new();
        for cqe in self.ring.completion() {
            done.push((cqe.user_data(), cqe.result()));
        }
        for (ud, res) in done {
            let slot = (ud & 0xffff_ffff) as u32;
            let generation = (ud >> 32) as u32;
            let Some(entry) = self.ops.get_mut(slot as usize) else {
                continue;
            };
            if entry.as_ref().map(|o| o.generation) != Some(generation) {
                continue;
            }
            let Some(op) = entry.take() else { continue };
            self.free.push(slot);
            self.in_flight = self.in_flight.saturating_sub(1);
            let result = if res < 0 {
                Err(io::Error::from_raw_os_error(-res))
            } else {
                Ok(res as usize)
            };
            out.push(Completion {
                id: OpId(ud),
                result,
                buf: op.buf,
            });
        }
    }
}

impl Drop for DiskRing {
    /// Waits (up to 2 s) for operations in flight, so the kernel never writes into freed
    /// memory; if they do not finish, their buffers are leaked instead of freed.
    fn drop(&mut self) {
        let _ = self.flush();
        let mut sink = Vec::new();
        for _ in 0..200 {
            if self.in_flight == 0 {
                return;
            }
            self.reap(&mut sink);
            sink.clear();
            if self.in_flight == 0 {
                return;
            }
            let _ = wait_readable(&[self.bell.fd()], Some(Duration::from_millis(10)));
        }
        log::warn!("disk io_uring operations did not finish; leaking their buffers");
        for op in self.ops.drain(..).flatten() {
            std::mem::forget(op);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wait_all(ring: &mut DiskRing, n: usize) -> Vec<Completion> {
        let mut out = Vec::new();
        ring.flush().unwrap();
        for _ in 0..500 {
            ring.reap(&mut out);
            if out.len() >= n {
                break;
            }
            if ring.prepare_wait() {
                wait_readable(&[ring.wait_fd()], Some(Duration::from_millis(10))).unwrap();
            }
        }
        out
    }

    #[test]
    fn write_fsync_read_back() {
        let path = std::env::temp_dir().join(format!("sixstack-uring-{}", std::process::id()));
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        );
        let mut ring = DiskRing::new(16).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let w = ring.write_at(file.clone(), 0, data.clone()).unwrap();
        let done = wait_all(&mut ring, 1);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, w);
        assert_eq!(*done[0].result.as_ref().unwrap(), data.len());
        ring.fsync(file.clone()).unwrap();
        let r1 = ring.read_at(file.clone(), 0, 60_000).unwrap();
        let r2 = ring.read_at(file.clone(), 60_000, 60_000).unwrap();
        let mut done = wait_all(&mut ring, 3);
        assert_eq!(done.len(), 3);
        done.sort_by_key(|c| c.id.0);
        let mut back = Vec::new();
        for id in [r1, r2] {
            let c = done.iter().find(|c| c.id == id).unwrap();
            let n = *c.result.as_ref().unwrap();
            back.extend_from_slice(&c.buf[..n]);
        }
        assert_eq!(back, data);
        assert_eq!(ring.in_flight(), 0);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn errors_come_back_as_errors() {
        let path = std::env::temp_dir().join(format!("sixstack-uring-ro-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let ro = Arc::new(File::open(&path).unwrap());
        let mut ring = DiskRing::new(8).unwrap();
        ring.write_at(ro, 0, b"nope".to_vec()).unwrap();
        let done = wait_all(&mut ring, 1);
        assert!(done[0].result.is_err());
        let _ = std::fs::remove_file(path);
    }
}
