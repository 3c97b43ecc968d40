//! EBCDIC for mainframe data: IBM-037 and IBM-1047 (both cover Latin-1, byte for byte,
//! so a translation there and back is exact). With a code page chosen (per user, or by
//! `SITE EBCDIC 1047`), TYPE A files on the appliance are EBCDIC text whose lines end in
//! NL (0x15), and the wire carries Latin-1 text with CR LF.
//!
//! The IBM-037 table is the published code page; IBM-1047 differs from it at six code
//! points (`^ ¬ [ ] Ý ¨`).

use crate::ascii::{FromWire, Recode, ToWire};

/// An EBCDIC code page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePage {
    /// IBM-037 (CCSID 37, US/Canada).
    Ibm037,
    /// IBM-1047 (Latin-1 open systems, z/OS UNIX).
    Ibm1047,
}

impl CodePage {
    /// From a SITE argument or a configuration value: `037`, `37`, `1047`.
    pub fn parse(s: &str) -> Option<CodePage> {
        match s.trim().to_ascii_uppercase().trim_start_matches("IBM-") {
            "037" | "37" | "CP037" => Some(CodePage::Ibm037),
            "1047" | "CP1047" => Some(CodePage::Ibm1047),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            CodePage::Ibm037 => "IBM-037",
            CodePage::Ibm1047 => "IBM-1047",
        }
    }

    /// The Latin-1 value of EBCDIC byte `b`.
    pub fn to_latin1(self, b: u8) -> u8 {
        let x = IBM037[b as usize];
        if self == CodePage::Ibm1047 {
            for (e, l1047, _) in DIFF_1047 {
                if b == e {
                    return l1047;
                }
            }
        }
        x
    }

    /// The EBCDIC byte of Latin-1 value `l`.
    pub fn from_latin1(self, l: u8) -> u8 {
        if self == CodePage::Ibm1047 {
            for (e, l1047, _) in DIFF_1047 {
                if l == l1047 {
                    return e;
                }
            }
        }
        // IBM-037 is a permutation of 0..=255: its inverse by search (256 entries).
        IBM037
            .iter()
            .position(|&x| x == l)
            .map_or(0x3F, |p| p as u8)
    }
}

/// EBCDIC (IBM-037) to Latin-1.
const IBM037: [u8; 256] = [
    0x00, 0x01, 0x02, 0x03, 0x9C, 0x09, 0x86, 0x7F, 0x97, 0x8D, 0x8E, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
    0x10, 0x11, 0x12, 0x13, 0x9D, 0x85, 0x08, 0x87, 0x18, 0x19, 0x92, 0x8F, 0x1C, 0x1D, 0x1E, 0x1F,
    0x80, 0x81, 0x82, 0x83, 0x84, 0x0A, 0x17, 0x1B, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x05, 0x06, 0x07,
    0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, 0x98, 0x99, 0x9A, 0x9B, 0x14, 0x15, 0x9E, 0x1A,
    0x20, 0xA0, 0xE2, 0xE4, 0xE0, 0xE1, 0xE3, 0xE5, 0xE7, 0xF1, 0xA2, 0x2E, 0x3C, 0x28, 0x2B, 0x7C,
    0x26, 0xE9, 0xEA, 0xEB, 0xE8, 0xED, 0xEE, 0xEF, 0xEC, 0xDF, 0x21, 0x24, 0x2A, 0x29, 0x3B, 0xAC,
    0x2D, 0x2F, 0xC2, 0xC4, 0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xD1, 0xA6, 0x2C, 0x25, 0x5F, 0x3E, 0x3F,
    0xF8, 0xC9, 0xCA, 0xCB, 0xC8, 0xCD, 0xCE, 0xCF, 0xCC, 0x60, 0x3A, 0x23, 0x40, 0x27, 0x3D, 0x22,
    0xD8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0xAB, 0xBB, 0xF0, 0xFD, 0xFE, 0xB1,
    0xB0, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72, 0xAA, 0xBA, 0xE6, 0xB8, 0xC6, 0xA4,
    0xB5, 0x7E, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0xA1, 0xBF, 0xD0, 0xDD, 0xDE, 0xAE,
    0x5E, 0xA3, 0xA5, 0xB7, 0xA9, 0xA7, 0xB6, 0xBC, 0xBD, 0xBE, 0x5B, 0x5D, 0xAF, 0xA8, 0xB4, 0xD7,
    0x7B, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0xAD, 0xF4, 0xF6, 0xF2, 0xF3, 0xF5,
    0x7D, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0xB9, 0xFB, 0xFC, 0xF9, 0xFA, 0xFF,
    0x5C, 0xF7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0xB2, 0xD4, 0xD6, 0xD2, 0xD3, 0xD5,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0xB3, 0xDB, 0xDC, 0xD9, 0xDA, 0x9F,
];

/// IBM-1047's six differences: (EBCDIC byte, its Latin-1 value in 1047, in 037).
const DIFF_1047: [(u8, u8, u8); 6] = [
    (0x5F, 0x5E, 0xAC),
    (0xAD, 0x5B, 0xDD),
    (0xB0, 0xAC, 0x5E),
    (0xBA, 0xDD, 0x5B),
    (0xBB, 0xA8, 0x5D),
    (0xBD, 0x5D, 0xA8),
];

/// The EBCDIC new line.
const NL: u8 = 0x15;

/// From an EBCDIC file to the wire: bytes translated, NL to CR LF.
#[derive(Debug)]
pub struct FileToWire {
    page: CodePage,
    lines: ToWire,
    latin: Vec<u8>,
}

impl FileToWire {
    /// For files in `page`.
    pub fn new(page: CodePage) -> FileToWire {
        FileToWire {
            page,
            lines: ToWire::default(),
            latin: Vec::new(),
        }
    }
}

impl Recode for FileToWire {
    fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.latin.clear();
        self.latin.extend(chunk.iter().map(|&b| {
            if b == NL {
                b'\n'
            } else {
                self.page.to_latin1(b)
            }
        }));
        self.lines.convert(&self.latin, out);
    }
}

/// From the wire to an EBCDIC file: CR LF to NL, bytes translated.
#[derive(Debug)]
pub struct WireToFile {
    page: CodePage,
    lines: FromWire,
    plain: Vec<u8>,
}

impl WireToFile {
    /// For files in `page`.
    pub fn new(page: CodePage) -> WireToFile {
        WireToFile {
            page,
            lines: FromWire::default(),
            plain: Vec::new(),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        for b in out.iter_mut() {
            *b = if *b == b'\n' {
                NL
            } else {
                self.page.from_latin1(*b)
            };
        }
    }
}

impl Recode for WireToFile {
    fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.lines.convert(chunk, &mut self.plain);
        out.clear();
        out.extend_from_slice(&self.plain);
        self.encode(out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.lines.finish(out);
        self.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_pages_are_exact_both_ways() {
        for page in [CodePage::Ibm037, CodePage::Ibm1047] {
            let mut seen = [false; 256];
            for b in 0..=255u8 {
                let l = page.to_latin1(b);
                assert!(!seen[l as usize], "{page:?}: two bytes map to {l:#x}");
                seen[l as usize] = true;
                assert_eq!(page.from_latin1(l), b, "{page:?} {b:#x}");
            }
        }
    }

    #[test]
    fn known_characters() {
        let (a, b) = (CodePage::Ibm037, CodePage::Ibm1047);
        assert_eq!(
            (
                a.from_latin1(b'A'),
                a.from_latin1(b'0'),
                a.from_latin1(b' ')
            ),
            (0xC1, 0xF0, 0x40)
        );
        assert_eq!((a.from_latin1(b'['), b.from_latin1(b'[')), (0xBA, 0xAD));
        assert_eq!((a.from_latin1(b']'), b.from_latin1(b']')), (0xBB, 0xBD));
        assert_eq!((a.from_latin1(b'^'), b.from_latin1(b'^')), (0xB0, 0x5F));
        assert_eq!(CodePage::parse("IBM-1047"), Some(b));
        assert_eq!(CodePage::parse("37"), Some(a));
        assert_eq!(CodePage::parse("500"), None);
    }

    #[test]
    fn text_round_trip_with_line_ends() {
        let mut up = WireToFile::new(CodePage::Ibm1047);
        let (mut file, mut tail) = (Vec::new(), Vec::new());
        up.convert(b"HELLO [X]\r", &mut file);
        let mut rest = Vec::new();
        up.convert(b"\nend\r\n", &mut rest);
        file.extend_from_slice(&rest);
        up.finish(&mut tail);
        file.extend_from_slice(&tail);
        assert_eq!(
            file,
            [0xC8, 0xC5, 0xD3, 0xD3, 0xD6, 0x40, 0xAD, 0xE7, 0xBD, 0x15, 0x85, 0x95, 0x84, 0x15]
        );
        let mut down = FileToWire::new(CodePage::Ibm1047);
        let mut wire = Vec::new();
        down.convert(&file, &mut wire);
        assert_eq!(wire, b"HELLO [X]\r\nend\r\n");
    }
}
