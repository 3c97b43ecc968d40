//! A tiny eBPF assembler: the instruction encoding (`struct bpf_insn`), the handful of
//! instructions the XDP filter needs, and forward labels resolved when the program is done.
//!
//! Not a general assembler: only what `program.rs` uses. A small interpreter for the same
//! subset lives in the tests, so the filter's logic is checked without root or a kernel.

/// Register numbers.
pub(crate) mod reg {
    pub const R0: u8 = 0;
    pub const R1: u8 = 1;
    pub const R2: u8 = 2;
    pub const R3: u8 = 3;
    pub const R4: u8 = 4;
    pub const R5: u8 = 5;
    pub const R6: u8 = 6;
    pub const R7: u8 = 7;
    pub const R8: u8 = 8;
    pub const R9: u8 = 9;
}

// Instruction classes.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_STX: u8 = 0x03;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
// Sizes and modes.
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
// Operand source.
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// ALU operations.
const BPF_ADD: u8 = 0x00;
const BPF_MOV: u8 = 0xb0;
// Jump operations.
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load that names a map by file descriptor.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `src_reg` of a 64-bit immediate load that yields the address of a single-entry array
/// map's value (plus the offset in the second slot's immediate).
const BPF_PSEUDO_MAP_VALUE: u8 = 2;

/// 64-bit ALU operations for [`Asm::alu64_imm`] and [`Asm::alu64_reg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alu {
    /// `dst += src`.
    Add = 0x00,
    /// `dst &= src`.
    And = 0x50,
    /// `dst <<= src`.
    Lsh = 0x60,
    /// `dst ^= src`.
    Xor = 0xa0,
}

/// Memory access width of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// One byte.
    B = 0x10,
    /// Two bytes.
    H = 0x08,
    /// Four bytes.
    W = 0x00,
}

/// Conditional jump comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    /// Equal.
    Eq = 0x10,
    /// Unsigned greater than.
    Gt = 0x20,
    /// Not equal.
    Ne = 0x50,
    /// Unsigned less than.
    Lt = 0xa0,
}

/// One encoded instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    /// `dst_reg:4, src_reg:4` bitfields.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        // Bitfields are allocated from the least significant bit on little-endian targets
        // and from the most significant on big-endian ones.
        #[cfg(target_endian = "little")]
        let regs = (dst & 0xf) | (src << 4);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0xf);
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    /// Destination register.
    #[cfg(test)]
    pub fn dst(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs & 0xf;
        #[cfg(target_endian = "big")]
        return self.regs >> 4;
    }

    /// Source register.
    #[cfg(test)]
    pub fn src(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs >> 4;
        #[cfg(target_endian = "big")]
        return self.regs & 0xf;
    }

    /// The 8 bytes the kernel reads.
    #[cfg(test)]
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// A jump target, bound to a position with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// Why a program could not be assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsmError {
    /// A jump names a label that was never bound.
    UnboundLabel,
    /// A jump is farther than a 16-bit offset reaches.
    JumpTooFar,
}

/// Builds a program instruction by instruction.
#[derive(Debug, Default)]
pub(crate) struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub(crate) fn new() -> Asm {
        Asm::default()
    }

    /// A fresh, unbound label.
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction.
    pub(crate) fn bind(&mut self, l: Label) {
        if let Some(slot) = self.labels.get_mut(l.0) {
            *slot = Some(self.insns.len());
        }
    }

    /// `dst = src` (64-bit).
    pub(crate) fn mov64_reg(&mut self, dst: u8, src: u8) {
        self.insns
            .push(Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0));
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub(crate) fn mov64_imm(&mut self, dst: u8, imm: i32) {
        self.insns
            .push(Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm));
    }

    /// `dst += imm` (64-bit).
    pub(crate) fn add64_imm(&mut self, dst: u8, imm: i32) {
        self.insns
            .push(Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm));
    }

    /// `dst <op>= imm` (64-bit, imm sign-extended).
    pub(crate) fn alu64_imm(&mut self, op: Alu, dst: u8, imm: i32) {
        self.insns
            .push(Insn::new(BPF_ALU64 | op as u8 | BPF_K, dst, 0, 0, imm));
    }

    /// `dst <op>= src` (64-bit).
    pub(crate) fn alu64_reg(&mut self, op: Alu, dst: u8, src: u8) {
        self.insns
            .push(Insn::new(BPF_ALU64 | op as u8 | BPF_X, dst, src, 0, 0));
    }

    /// `*(size *)(dst + off) = src`.
    pub(crate) fn stx(&mut self, size: Size, dst: u8, off: i16, src: u8) {
        self.insns
            .push(Insn::new(BPF_STX | BPF_MEM | size as u8, dst, src, off, 0));
    }

    /// `dst = &value + off` for the single-entry array map with file descriptor `fd` (a
    /// two-slot instruction; the verifier bounds every access through `dst` by the value
    /// size).
    pub(crate) fn ld_map_value(&mut self, dst: u8, fd: i32, off: i32) {
        self.insns.push(Insn::new(
            BPF_LD | BPF_DW | BPF_IMM,
            dst,
            BPF_PSEUDO_MAP_VALUE,
            0,
            fd,
        ));
        self.insns.push(Insn::new(0, 0, 0, 0, off));
    }

    /// `dst = *(size *)(src + off)`.
    pub(crate) fn ldx(&mut self, size: Size, dst: u8, src: u8, off: i16) {
        self.insns
            .push(Insn::new(BPF_LDX | BPF_MEM | size as u8, dst, src, off, 0));
    }

    /// `if dst <cond> imm goto target`, comparing 64 bits (imm sign-extended).
    pub(crate) fn jmp_imm(&mut self, cond: Cond, dst: u8, imm: i32, target: Label) {
        self.jump(
            Insn::new(BPF_JMP | cond as u8 | BPF_K, dst, 0, 0, imm),
            target,
        );
    }

    /// `if (u32)dst <cond> (u32)imm goto target`: what compares loaded 32-bit words, whose
    /// top bit would otherwise make the sign-extended immediate differ.
    pub(crate) fn jmp32_imm(&mut self, cond: Cond, dst: u8, imm: u32, target: Label) {
        let imm = i32::from_ne_bytes(imm.to_ne_bytes());
        self.jump(
            Insn::new(BPF_JMP32 | cond as u8 | BPF_K, dst, 0, 0, imm),
            target,
        );
    }

    /// `if dst <cond> src goto target` (64-bit).
    pub(crate) fn jmp_reg(&mut self, cond: Cond, dst: u8, src: u8, target: Label) {
        self.jump(
            Insn::new(BPF_JMP | cond as u8 | BPF_X, dst, src, 0, 0),
            target,
        );
    }

    /// `goto target`.
    pub(crate) fn ja(&mut self, target: Label) {
        self.jump(Insn::new(BPF_JMP | BPF_JA, 0, 0, 0, 0), target);
    }

    fn jump(&mut self, insn: Insn, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns.push(insn);
    }

    /// `dst = map` for the map with file descriptor `fd` (a two-slot instruction).
    pub(crate) fn ld_map_fd(&mut self, dst: u8, fd: i32) {
        self.insns.push(Insn::new(
            BPF_LD | BPF_DW | BPF_IMM,
            dst,
            BPF_PSEUDO_MAP_FD,
            0,
            fd,
        ));
        self.insns.push(Insn::new(0, 0, 0, 0, 0));
    }

    /// Calls helper number `helper` (arguments in r1..r5, result in r0).
    pub(crate) fn call(&mut self, helper: i32) {
        self.insns
            .push(Insn::new(BPF_JMP | BPF_CALL, 0, 0, 0, helper));
    }

    /// Returns r0.
    pub(crate) fn exit(&mut self) {
        self.insns.push(Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    }

    /// Resolves every jump and returns the program.
    pub(crate) fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for &(at, Label(l)) in &self.fixups {
            let target = self
                .labels
                .get(l)
                .copied()
                .flatten()
                .ok_or(AsmError::UnboundLabel)?;
            let delta = target as i64 - (at as i64 + 1);
            let off = i16::try_from(delta).map_err(|_| AsmError::JumpTooFar)?;
            if let Some(insn) = self.insns.get_mut(at) {
                insn.off = off;
            }
        }
        Ok(self.insns)
    }
}

/// A reference interpreter for exactly the instructions [`Asm`] emits, used by tests to run
/// generated programs over sample frames.
#[cfg(test)]
pub(crate) mod interp {
    use super::*;

    /// Where the context (`struct xdp_md`) lives in the interpreter's address space.
    const CTX: u64 = 0x1000;
    /// Where the packet starts.
    const PKT: u64 = 0x10_0000;
    /// The value a map load produces.
    pub const MAP: u64 = 0xdead_0000;

    /// What a run ended with.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        /// `exit` with r0 = this action, no redirect.
        Action(u64),
        /// `bpf_redirect_map(map, key, flags)` was called and its result returned.
        Redirect { key: u64, flags: u64 },
    }

    /// Runs `prog` over `frame` received on queue `rx_queue`. Panics (failing the test) on
    /// any access outside the frame or context, on unknown instructions, or on a runaway.
    pub fn run(prog: &[Insn], frame: &[u8], rx_queue: u32) -> Outcome {
        let mut ctx = [0u8; 24];
        ctx[0..4].copy_from_slice(&(PKT as u32).to_ne_bytes());
        ctx[4..8].copy_from_slice(&((PKT as usize + frame.len()) as u32).to_ne_bytes());
        ctx[16..20].copy_from_slice(&rx_queue.to_ne_bytes());
        let load = |addr: u64, n: usize| -> u64 {
            let bytes: &[u8] = if (CTX..CTX + 24).contains(&addr) {
                let o = (addr - CTX) as usize;
                &ctx[o..o + n]
            } else {
                let o = addr
                    .checked_sub(PKT)
                    .map(|o| o as usize)
                    .filter(|o| o + n <= frame.len());
                let o = o.unwrap_or_else(|| panic!("out-of-bounds load at {addr:#x}+{n}"));
                &frame[o..o + n]
            };
            let mut v = [0u8; 8];
            v[..n].copy_from_slice(bytes);
            u64::from_le_bytes(v)
        };
        let mut r = [0u64; 11];
        r[1] = CTX;
        let mut pc = 0usize;
        let mut redirect = None;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (dst, src) = (i.dst() as usize, i.src() as usize);
            let imm64 = i.imm as i64 as u64;
            let jump = |taken: bool, pc: &mut usize| {
                if taken {
                    *pc = (*pc as i64 + i.off as i64) as usize;
                }
            };
            match i.code {
                0xbf => r[dst] = r[src],
                0xb7 => r[dst] = imm64,
                0x07 => r[dst] = r[dst].wrapping_add(imm64),
                0x71 => r[dst] = load(r[src].wrapping_add(i.off as i64 as u64), 1),
                0x69 => r[dst] = load(r[src].wrapping_add(i.off as i64 as u64), 2),
                0x61 => r[dst] = load(r[src].wrapping_add(i.off as i64 as u64), 4),
                0x18 => {
                    assert_eq!(src, 1, "only map loads are emitted");
                    r[dst] = MAP;
                    pc += 1;
                }
                0x15 => jump(r[dst] == imm64, &mut pc),
                0x55 => jump(r[dst] != imm64, &mut pc),
                0x25 => jump(r[dst] > imm64, &mut pc),
                0x2d => jump(r[dst] > r[src], &mut pc),
                0x16 => jump(r[dst] as u32 == i.imm as u32, &mut pc),
                0x56 => jump(r[dst] as u32 != i.imm as u32, &mut pc),
                0x05 => jump(true, &mut pc),
                0x85 => {
                    assert_eq!(i.imm, 51, "only bpf_redirect_map is called");
                    assert_eq!(r[1], MAP);
                    redirect = Some((r[2], r[3]));
                    r[0] = 4;
                }
                0x95 => {
                    return match redirect {
                        Some((key, flags)) => Outcome::Redirect { key, flags },
                        None => Outcome::Action(r[0]),
                    }
                }
                c => panic!("unexpected opcode {c:#x} at {pc}"),
            }
            pc += 1;
        }
        panic!("program did not terminate");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::reg::*;
    use super::*;

    fn bytes(p: &[Insn]) -> Vec<[u8; 8]> {
        p.iter().map(|i| i.to_bytes()).collect()
    }

    #[test]
    fn encodings_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let mut a = Asm::new();
        a.mov64_reg(R6, R1);
        a.mov64_imm(R0, 2);
        a.ldx(Size::W, R2, R1, 4);
        a.ldx(Size::H, R5, R2, 12);
        a.ldx(Size::B, R4, R2, 20);
        a.add64_imm(R4, 14);
        a.ld_map_fd(R1, 7);
        a.call(51);
        a.exit();
        let p = a.finish().unwrap();
        let expect: [[u8; 8]; 10] = [
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0],
            [0xb7, 0x00, 0, 0, 2, 0, 0, 0],
            [0x61, 0x12, 4, 0, 0, 0, 0, 0],
            [0x69, 0x25, 12, 0, 0, 0, 0, 0],
            [0x71, 0x24, 20, 0, 0, 0, 0, 0],
            [0x07, 0x04, 0, 0, 14, 0, 0, 0],
            [0x18, 0x11, 0, 0, 7, 0, 0, 0],
            [0x00, 0x00, 0, 0, 0, 0, 0, 0],
            [0x85, 0x00, 0, 0, 51, 0, 0, 0],
            [0x95, 0x00, 0, 0, 0, 0, 0, 0],
        ];
        if cfg!(target_endian = "little") {
            assert_eq!(bytes(&p), expect);
        }
    }

    #[test]
    fn alu_store_and_map_value_encodings() {
        let mut a = Asm::new();
        a.alu64_imm(Alu::And, R5, 0x0f);
        a.alu64_imm(Alu::Lsh, R5, 2);
        a.alu64_reg(Alu::Xor, R7, R1);
        a.alu64_reg(Alu::Add, R1, R5);
        a.stx(Size::W, R6, 12, R5);
        a.ld_map_value(R9, 7, 48);
        let p = a.finish().unwrap();
        let expect: [[u8; 8]; 7] = [
            [0x57, 0x05, 0, 0, 0x0f, 0, 0, 0],
            [0x67, 0x05, 0, 0, 2, 0, 0, 0],
            [0xaf, 0x17, 0, 0, 0, 0, 0, 0],
            [0x0f, 0x51, 0, 0, 0, 0, 0, 0],
            [0x63, 0x56, 12, 0, 0, 0, 0, 0],
            [0x18, 0x29, 0, 0, 7, 0, 0, 0],
            [0x00, 0x00, 0, 0, 48, 0, 0, 0],
        ];
        if cfg!(target_endian = "little") {
            assert_eq!(bytes(&p), expect);
        }
    }

    #[test]
    fn jumps_resolve_forward_and_backward() {
        let mut a = Asm::new();
        let end = a.label();
        let top = a.label();
        a.bind(top);
        a.jmp_imm(Cond::Eq, R5, 8, end); // 0 -> 3: off 2
        a.jmp32_imm(Cond::Ne, R5, 0xc801_630a, end); // 1 -> 3: off 1
        a.jmp_reg(Cond::Gt, R4, R3, top); // 2 -> 0: off -3
        a.bind(end);
        a.ja(end); // 3 -> 3: off -1
        let p = a.finish().unwrap();
        assert_eq!(p[0].code, 0x15);
        assert_eq!(p[0].off, 2);
        assert_eq!(p[0].imm, 8);
        assert_eq!(p[1].code, 0x56);
        assert_eq!(p[1].off, 1);
        assert_eq!(p[1].imm as u32, 0xc801_630a);
        assert_eq!(p[2].code, 0x2d);
        assert_eq!((p[2].dst(), p[2].src(), p[2].off), (R4, R3, -3));
        assert_eq!((p[3].code, p[3].off), (0x05, -1));
    }

    #[test]
    fn unbound_labels_and_far_jumps_are_errors() {
        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        assert_eq!(a.finish(), Err(AsmError::UnboundLabel));

        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        for _ in 0..40_000 {
            a.exit();
        }
        a.bind(l);
        a.exit();
        assert_eq!(a.finish(), Err(AsmError::JumpTooFar));
    }
}
