//! A one-frame device: lets the shard hand smoltcp exactly the frame it has already
//! classified (a zero-copy view into the link's buffer, or a handed-over copy), together
//! with a transmit token of the real link for the reply.

use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;

pub(crate) struct OneFrame<'f, T: TxToken> {
    pub(crate) frame: Option<&'f [u8]>,
    pub(crate) tx: Option<T>,
    pub(crate) caps: DeviceCapabilities,
}

pub(crate) struct SliceRx<'f>(&'f [u8]);

impl RxToken for SliceRx<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

impl<'f, T: TxToken> Device for OneFrame<'f, T> {
    type RxToken<'a>
        = SliceRx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = T
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(SliceRx<'_>, T)> {
        // Without a transmit token the frame stays for a later call.
        self.tx.as_ref()?;
        let f = self.frame.take()?;
        let t = self.tx.take()?;
        Some((SliceRx(f), t))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<T> {
        self.tx.take()
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
