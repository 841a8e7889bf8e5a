//! Instruction checks with expected values from real hardware. A check is a snippet (a few
//! instructions ending in RET), an input state (registers, status flags, 32 bytes of memory)
//! and the output state this host's CPU produced from it (`host`). The ROM carries a table of
//! checks; its runner loads each input state, calls the snippet through the same harness the
//! host used, and compares the result register by register, ignoring only the flags the SDM
//! leaves undefined for that instruction.
//!
//! State block (`State`, 0xa0 bytes, 16-byte aligned):
//!
//! | offset | contents |
//! |---|---|
//! | 0x00 | RAX RBX RCX RDX RSI RDI RBP R8 R9 R10 R11 R12 R13 (8 bytes each) |
//! | 0x68 | RFLAGS |
//! | 0x70 | address of the snippet (16-bit code: offset, then segment 0) |
//! | 0x80 | 32 bytes of memory the snippet may use (64-bit code: at R15; R14 = -R15) |
//!
//! Table: the pattern state (the value of everything a check does not set), then entries
//! `u16 size, u16 in_mask, u16 out_mask, u16 ignore_mask, u32 flags_mask, u32 in_flags,
//! u32 out_flags`, the input values named by `in_mask`, the output values named by
//! `out_mask` (others: unchanged), the name (NUL-terminated) and the snippet. Mask bit i is
//! register i; bit 14 is the memory block. A zero size ends the table.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

mod runner;

use crate::asm::layout;
use crate::asm::rom::{R, RomBuilder};
use crate::asm::rt::print;
use crate::asm::{RamInit, boot};
use runner::{runner32, runner64};

/// Registers in a state block, in order.
pub const REG_NAMES: [&str; NREGS] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
];
/// Number of registers in a state block.
pub const NREGS: usize = 13;
/// Register indexes.
pub mod reg {
    #![allow(missing_docs)]
    pub const RAX: usize = 0;
    pub const RBX: usize = 1;
    pub const RCX: usize = 2;
    pub const RDX: usize = 3;
    pub const RSI: usize = 4;
    pub const RDI: usize = 5;
    pub const RBP: usize = 6;
    pub const R8: usize = 7;
    pub const R9: usize = 8;
    pub const R10: usize = 9;
    pub const R11: usize = 10;
    pub const R12: usize = 11;
    pub const R13: usize = 12;
}
/// Memory block size.
pub const MEM_SIZE: usize = 32;
/// Mask bit for the memory block.
pub const MEM_BIT: u16 = 1 << 14;
const OFF_FLAGS: i32 = 0x68;
const OFF_CODE: i32 = 0x70;
const OFF_MEM: i32 = 0x80;
const STATE_SIZE: u32 = 0xa0;
const ENTRY_HEAD: usize = 20;

/// RFLAGS status bits.
pub mod fl {
    #![allow(missing_docs)]
    pub const CF: u32 = 1 << 0;
    pub const PF: u32 = 1 << 2;
    pub const AF: u32 = 1 << 4;
    pub const ZF: u32 = 1 << 6;
    pub const SF: u32 = 1 << 7;
    pub const DF: u32 = 1 << 10;
    pub const OF: u32 = 1 << 11;
    /// The six arithmetic flags.
    pub const STATUS: u32 = CF | PF | AF | ZF | SF | OF;
    /// Everything the checks compare: the status flags and DF.
    pub const ALL: u32 = STATUS | DF;
}

/// Register and memory state in the harness layout.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// RAX..R13 in `REG_NAMES` order.
    pub regs: [u64; NREGS],
    /// RFLAGS.
    pub rflags: u64,
    /// Snippet address (set by the harness user).
    pub code: u64,
    /// Padding.
    pub pad: u64,
    /// The memory block.
    pub mem: [u8; MEM_SIZE],
}

impl State {
    /// What a check starts from: every register a distinct recognisable value, flags clear.
    pub fn pattern() -> State {
        let mut regs = [0u64; NREGS];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64 + 1);
        }
        let mut mem = [0u8; MEM_SIZE];
        for (k, m) in mem.iter_mut().enumerate() {
            *m = (0x30 + k * 7) as u8;
        }
        State {
            regs,
            rflags: 2,
            code: 0,
            pad: 0,
            mem,
        }
    }

    /// The state block's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(STATE_SIZE as usize);
        for r in &self.regs {
            v.extend_from_slice(&r.to_le_bytes());
        }
        v.extend_from_slice(&self.rflags.to_le_bytes());
        v.extend_from_slice(&self.code.to_le_bytes());
        v.extend_from_slice(&self.pad.to_le_bytes());
        v.extend_from_slice(&self.mem);
        v
    }
}

/// One check, ready for the table.
#[derive(Clone, Debug)]
pub struct Check {
    /// What it runs, in Intel syntax.
    pub name: String,
    /// The snippet the guest runs.
    pub guest: Vec<u8>,
    /// Input state.
    pub input: State,
    /// Output state, from this host's CPU.
    pub expected: State,
    /// RFLAGS bits compared.
    pub flags_mask: u32,
    /// Registers (bit i) and memory (`MEM_BIT`) not compared.
    pub ignore: u16,
}

/// The 64-bit harness, identical on the host and in the guest: RDI points at a state block;
/// load it (RFLAGS through POPFQ), call the snippet, store everything back (RFLAGS through
/// PUSHFQ). R15 = the memory block, R14 = -R15 during the snippet. Preserves the SysV
/// callee-saved registers, returns with DF clear.
pub fn harness64(a: &mut CodeAssembler) -> R {
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r)?;
    }
    a.push(rdi)?;
    a.lea(r15, qword_ptr(rdi + OFF_MEM))?;
    a.mov(r14, r15)?;
    a.neg(r14)?;
    a.push(qword_ptr(rdi + OFF_FLAGS))?;
    a.popfq()?;
    let load: [(AsmRegister64, i32); 12] = [
        (rax, 0),
        (rbx, 8),
        (rcx, 16),
        (rdx, 24),
        (rsi, 32),
        (rbp, 48),
        (r8, 56),
        (r9, 64),
        (r10, 72),
        (r11, 80),
        (r12, 88),
        (r13, 96),
    ];
    for (r, off) in load {
        a.mov(r, qword_ptr(rdi + off))?;
    }
    a.mov(rdi, qword_ptr(rdi + 40))?;
    a.call(qword_ptr(r15 + (OFF_CODE - OFF_MEM)))?;
    a.pushfq()?;
    a.push(rdi)?;
    a.mov(rdi, qword_ptr(rsp + 16))?;
    a.pop(qword_ptr(rdi + 40))?;
    a.pop(qword_ptr(rdi + OFF_FLAGS))?;
    for (r, off) in load {
        a.mov(qword_ptr(rdi + off), r)?;
    }
    a.pop(rdi)?;
    a.cld()?;
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r)?;
    }
    a.ret()
}

/// A snippet of `bits`-bit code: what `f` emits, then RET (RETF in 16-bit code, which the
/// harness calls far). Position-independent: assembled at 0.
pub fn snippet(bits: u32, f: impl FnOnce(&mut CodeAssembler) -> R) -> Vec<u8> {
    crate::asm::rom::assemble(bits, 0, |a| {
        f(a)?;
        if bits == 16 { a.retf() } else { a.ret() }
    })
}

/// Intel-syntax text of a snippet, without its final return.
pub fn disasm(bits: u32, bytes: &[u8]) -> String {
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_space_after_operand_separator(true);
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_uppercase_hex(false);
    fmt.options_mut().set_branch_leading_zeros(false);
    let mut dec = Decoder::with_ip(bits, bytes, 0, DecoderOptions::NONE);
    let mut parts = Vec::new();
    while dec.can_decode() {
        let i = dec.decode();
        if matches!(
            i.mnemonic(),
            iced_x86::Mnemonic::Ret | iced_x86::Mnemonic::Retf
        ) && dec.position() == bytes.len()
        {
            break;
        }
        let mut s = String::new();
        fmt.format(&i, &mut s);
        parts.push(s);
    }
    parts.join("; ")
}

/// Encode a check table (pattern state first).
pub fn encode(checks: &[Check]) -> Vec<u8> {
    let pat = State::pattern();
    let mut out = pat.to_bytes();
    for c in checks {
        let mut in_mask = 0u16;
        let mut out_mask = 0u16;
        let mut vals = Vec::new();
        for i in 0..NREGS {
            if c.input.regs[i] != pat.regs[i] {
                in_mask |= 1 << i;
                vals.extend_from_slice(&c.input.regs[i].to_le_bytes());
            }
        }
        if c.input.mem != pat.mem {
            in_mask |= MEM_BIT;
            vals.extend_from_slice(&c.input.mem);
        }
        for i in 0..NREGS {
            if c.expected.regs[i] != c.input.regs[i] {
                out_mask |= 1 << i;
                vals.extend_from_slice(&c.expected.regs[i].to_le_bytes());
            }
        }
        if c.expected.mem != c.input.mem {
            out_mask |= MEM_BIT;
            vals.extend_from_slice(&c.expected.mem);
        }
        let mut e = Vec::new();
        let size = ENTRY_HEAD + vals.len() + c.name.len() + 1 + c.guest.len();
        e.extend_from_slice(
            &(u16::try_from(size).expect("check entry below 64 KiB")).to_le_bytes(),
        );
        e.extend_from_slice(&in_mask.to_le_bytes());
        e.extend_from_slice(&out_mask.to_le_bytes());
        e.extend_from_slice(&c.ignore.to_le_bytes());
        e.extend_from_slice(&c.flags_mask.to_le_bytes());
        e.extend_from_slice(&(c.input.rflags as u32).to_le_bytes());
        e.extend_from_slice(&(c.expected.rflags as u32).to_le_bytes());
        e.extend_from_slice(&vals);
        e.extend_from_slice(c.name.as_bytes());
        e.push(0);
        e.extend_from_slice(&c.guest);
        assert_eq!(e.len(), size);
        out.extend_from_slice(&e);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// A family of checks with a title, ready to become a ROM.
#[derive(Clone, Debug)]
pub struct Family {
    /// ROM name (`families/<file>`).
    pub rom: String,
    /// What the ROM says it checks.
    pub title: String,
    /// Guest code bitness: 64 (long mode), 32 (protected mode) or 16 (real mode).
    pub bits: u32,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Family {
    fn expected(&self) -> String {
        let mut s = format!(
            "{}: {} checks, expected values from the host CPU\n",
            self.title,
            self.checks.len()
        );
        for (k, c) in self.checks.iter().enumerate() {
            s.push_str(&format!("ok {} {}\n", k + 1, c.name));
        }
        s.push_str("all checks passed\n");
        s
    }

    /// Build the ROM that runs the checks in the family's mode.
    pub fn build(self) -> crate::TestRom {
        let expected = self.expected();
        let table = encode(&self.checks);
        let header = format!(
            "{}: {} checks, expected values from the host CPU\n",
            self.title,
            self.checks.len()
        );
        let mut rom = RomBuilder::new(&self.rom);
        match self.bits {
            64 => {
                boot::standard_long(&mut rom, &boot::long_mode_tables(), "main", false);
                rom.code64("check64", runner64);
                rom.code64("main", move |a| {
                    print(a, &header)?;
                    let t = a.sym("check.table");
                    a.mov(rsi, t)?;
                    a.call_sym("check64.run")?;
                    crate::asm::exit(a)
                });
                rom.data("check.table", 16, table);
            }
            32 => {
                boot::standard_prot32(&mut rom, "main");
                rom.code32("check32", runner32);
                rom.code32("main", move |a| {
                    print(a, &header)?;
                    let t = a.sym("check.table");
                    a.mov(esi, t as u32)?;
                    a.call_sym("check32.run")?;
                    crate::asm::exit(a)
                });
                rom.data("check.table", 16, table);
            }
            16 => {
                assert!(
                    table.len() as u64 <= layout::REAL_TABLE_MAX,
                    "{}: table too large for real mode",
                    self.rom
                );
                rom.ram(RamInit::Bytes(layout::REAL_TABLE, table));
                // Boot to protected mode (which writes the table to RAM), then back.
                rom.code16("boot16", |a| {
                    boot::real_start(a)?;
                    boot::real_to_prot32(a, "boot32")
                });
                rom.code32("boot32", |a| {
                    boot::prot32_setup(a)?;
                    boot::prot32_to_pm16(a, "pm16")
                });
                rom.code16("pm16", |a| boot::pm16_to_real(a, "main"));
                rom.code16("check16", runner32);
                rom.code16("main", move |a| {
                    boot::real_reenter(a)?;
                    print(a, &header)?;
                    a.mov(esi, layout::REAL_TABLE as u32)?;
                    a.call_sym("check16.run")?;
                    crate::asm::exit(a)
                });
            }
            b => panic!("no {b}-bit family runner"),
        }
        rom.build(&expected)
    }
}
