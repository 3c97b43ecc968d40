//! TYPE A over SSH. SSH moves bytes; the appliance converts text on its side. Local text
//! files end lines in LF (or CR LF), or are EBCDIC with NL when a code page is given; the
//! remote host's text ends lines in LF, or CR LF with `EOL CRLF`. The conversion goes
//! through the CR LF form the FTP client's recoders already speak, chunk by chunk.

use sixstack_ftp::ascii::{FromWire, Recode, ToWire};
use sixstack_ftp::ebcdic::{FileToWire, WireToFile};

use super::script::{Eol, TransferType};

/// One direction of a TYPE A conversion (two recoders in a row, the second optional).
pub struct Convert {
    first: Box<dyn Recode + Send>,
    second: Option<Box<dyn Recode + Send>>,
    mid: Vec<u8>,
    tail: Vec<u8>,
}

impl std::fmt::Debug for Convert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Convert").finish_non_exhaustive()
    }
}

impl Convert {
    /// Local file to remote text; `None` for TYPE I.
    pub fn upload(ty: TransferType, eol: Eol) -> Option<Convert> {
        let TransferType::Ascii(page) = ty else {
            return None;
        };
        let first: Box<dyn Recode + Send> = match page {
            Some(p) => Box::new(FileToWire::new(p)),
            None => Box::new(ToWire::default()),
        };
        let second: Option<Box<dyn Recode + Send>> = match eol {
            Eol::Lf => Some(Box::new(FromWire::default())),
            Eol::CrLf => None,
        };
        Some(Convert::of(first, second))
    }

    /// Remote text to the local file; `None` for TYPE I.
    pub fn download(ty: TransferType) -> Option<Convert> {
        let TransferType::Ascii(page) = ty else {
            return None;
        };
        let second: Box<dyn Recode + Send> = match page {
            Some(p) => Box::new(WireToFile::new(p)),
            None => Box::new(FromWire::default()),
        };
        // LF or CR LF from the remote host: both become CR LF, then local.
        Some(Convert::of(Box::new(ToWire::default()), Some(second)))
    }

    fn of(first: Box<dyn Recode + Send>, second: Option<Box<dyn Recode + Send>>) -> Convert {
        Convert {
            first,
            second,
            mid: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// Converts one chunk into `out` (replacing what it held).
    pub fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match &mut self.second {
            None => self.first.convert(chunk, out),
            Some(s) => {
                self.first.convert(chunk, &mut self.mid);
                s.convert(&self.mid, out);
            }
        }
    }

    /// The end of the stream: what the recoders held back, into `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match &mut self.second {
            None => self.first.finish(out),
            Some(s) => {
                self.first.finish(&mut self.mid);
                s.convert(&self.mid, out);
                s.finish(&mut self.tail);
                out.extend_from_slice(&self.tail);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sixstack_ftp::ebcdic::CodePage;

    fn run(mut c: Convert, chunks: &[&[u8]]) -> Vec<u8> {
        let (mut out, mut all) = (Vec::new(), Vec::new());
        for ch in chunks {
            c.convert(ch, &mut out);
            all.extend_from_slice(&out);
        }
        c.finish(&mut out);
        all.extend_from_slice(&out);
        all
    }

    #[test]
    fn text_both_ways() {
        let up = || Convert::upload(TransferType::Ascii(None), Eol::Lf).unwrap();
        assert_eq!(run(up(), &[b"a\r\nb\nc\r", b"\nd"]), b"a\nb\nc\nd");
        let crlf = Convert::upload(TransferType::Ascii(None), Eol::CrLf).unwrap();
        assert_eq!(run(crlf, &[b"a\nb\r\n"]), b"a\r\nb\r\n");
        let down = || Convert::download(TransferType::Ascii(None)).unwrap();
        assert_eq!(run(down(), &[b"a\r\nb\n", b"c\r", b"\n"]), b"a\nb\nc\n");
        assert!(Convert::upload(TransferType::Image, Eol::Lf).is_none());
    }

    #[test]
    fn ebcdic_round_trip() {
        let page = Some(CodePage::Ibm037);
        // "Hi\n" in IBM-037 with NL line ends.
        let local = [0xC8, 0x89, 0x15, 0xC1, 0x15];
        let remote = run(
            Convert::upload(TransferType::Ascii(page), Eol::Lf).unwrap(),
            &[&local[..2], &local[2..]],
        );
        assert_eq!(remote, b"Hi\nA\n");
        let back = run(
            Convert::download(TransferType::Ascii(page)).unwrap(),
            &[&remote],
        );
        assert_eq!(back, local);
    }
}
