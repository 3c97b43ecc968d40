//! TYPE A line endings: files on the appliance end lines in LF, the wire in CR LF. Both
//! directions work chunk by chunk, carrying what a chunk boundary splits; [`Recode`] is
//! what every TYPE A recoding (these, and EBCDIC's) offers a transfer.

/// A TYPE A recoding, chunk by chunk.
pub trait Recode {
    /// Recodes one chunk into `out` (replacing what it held).
    fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// The end of the stream: what was held back, into `out`.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.clear();
    }
}

/// To the wire: every LF not already preceded by CR becomes CR LF.
#[derive(Debug, Default)]
pub struct ToWire {
    last_cr: bool,
}

impl Recode for ToWire {
    fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(chunk.len() + chunk.len() / 16);
        for &b in chunk {
            if b == b'\n' && !self.last_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_cr = b == b'\r';
        }
    }
}

/// From the wire: CR LF becomes LF; a lone CR stays.
#[derive(Debug, Default)]
pub struct FromWire {
    pending_cr: bool,
}

impl Recode for FromWire {
    fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(chunk.len() + 1);
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// A CR held back is written.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.clear();
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_wire(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut c, mut out, mut all) = (ToWire::default(), Vec::new(), Vec::new());
        for ch in chunks {
            c.convert(ch, &mut out);
            all.extend_from_slice(&out);
        }
        all
    }

    fn from_wire(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut c, mut out, mut all) = (FromWire::default(), Vec::new(), Vec::new());
        for ch in chunks {
            c.convert(ch, &mut out);
            all.extend_from_slice(&out);
        }
        c.finish(&mut out);
        all.extend_from_slice(&out);
        all
    }

    #[test]
    fn both_ways_across_chunk_boundaries() {
        assert_eq!(to_wire(&[b"a\nb\r\nc\n"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_wire(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(from_wire(&[b"a\r\nb\r", b"\nc\rd\r"]), b"a\nb\nc\rd\r");
        let text = b"line one\nline two\n\nlast";
        assert_eq!(from_wire(&[&to_wire(&[text])]), text);
    }
}
