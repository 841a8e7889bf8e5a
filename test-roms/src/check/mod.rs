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

use crate::asm::layout::{self, VARS, VAR_FAILS};
use crate::asm::rom::{Asm, R, RomBuilder};
use crate::asm::rt::{dec, hex, print, puts};
use crate::asm::{RamInit, boot};

/// Registers in a state block, in order.
pub const REG_NAMES: [&str; NREGS] = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13"];
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
        State { regs, rflags: 2, code: 0, pad: 0, mem }
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

/// The 32-bit harness (16-bit code: the same with prefixes, and a far call so snippets can
/// live anywhere below 1 MiB): the state block is at `layout::CHECK_STATE`.
fn harness32(a: &mut Asm) -> R {
    let st = layout::CHECK_STATE as u32;
    let regs: [(AsmRegister32, u32); 7] = [(eax, 0), (ebx, 8), (ecx, 16), (edx, 24), (esi, 32), (edi, 40), (ebp, 48)];
    a.pushad()?;
    a.push(dword_ptr(st + OFF_FLAGS as u32))?;
    a.popfd()?;
    for (r, off) in regs {
        a.mov(r, dword_ptr(st + off))?;
    }
    // In 16-bit code a dword memory operand makes this a far call through m16:16.
    a.call(dword_ptr(st + OFF_CODE as u32))?;
    a.pushfd()?;
    a.pop(dword_ptr(st + OFF_FLAGS as u32))?;
    for (r, off) in regs {
        a.mov(dword_ptr(st + off), r)?;
    }
    a.cld()?;
    a.popad()?;
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
        if matches!(i.mnemonic(), iced_x86::Mnemonic::Ret | iced_x86::Mnemonic::Retf) && dec.position() == bytes.len() {
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
        e.extend_from_slice(&(u16::try_from(size).expect("check entry below 64 KiB")).to_le_bytes());
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

/// Working state blocks of the runners.
const RUN: u32 = layout::CHECK_STATE as u32;
const EXPECTED: u32 = RUN + 0x100;
const INPUT: u32 = RUN + 0x200;
/// Runner variables (32-bit runner; the 64-bit one keeps them in registers).
const V_COUNT: u32 = (VARS + 0x80) as u32;
const V_NAME: u32 = (VARS + 0x88) as u32;
const V_FAILED: u32 = (VARS + 0x90) as u32;
const V_PATTERN: u32 = (VARS + 0x98) as u32;

/// Print the name of register ECX (an index into `REG_NAMES`).
fn print_reg_name(a: &mut Asm, wide: bool) -> R {
    let mut end = a.create_label();
    let n = if wide { NREGS } else { 7 };
    for (i, name) in REG_NAMES.iter().enumerate().take(n) {
        let mut other = a.create_label();
        a.cmp(ecx, i as u32)?;
        a.jne(other)?;
        let name = if wide { name.to_string() } else { name.replacen('r', "e", 1) };
        print(a, &name)?;
        a.jmp(end)?;
        a.set_label(&mut other)?;
        a.nop()?;
    }
    a.set_label(&mut end)?;
    a.nop()
}

/// The 64-bit runner (`check64.run`: RSI = table; returns EAX = checks run) and harness.
fn runner64(a: &mut Asm) -> R {
    let mut harness = a.create_label();
    let mut load_masked = a.create_label();
    let mut fail_head = a.create_label();
    let (mut next, mut done, mut skip) = (a.create_label(), a.create_label(), a.create_label());
    a.export("check64.run")?;
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r)?;
    }
    a.cld()?;
    a.mov(r12, rsi)?;
    a.lea(rbx, qword_ptr(rsi + STATE_SIZE as i32))?;
    a.xor(r13d, r13d)?;
    a.set_label(&mut next)?;
    a.movzx(eax, word_ptr(rbx))?;
    a.test(eax, eax)?;
    a.jz(done)?;
    // INPUT = pattern, with the entry's flags and input values.
    a.mov(rsi, r12)?;
    a.mov(edi, INPUT)?;
    a.mov(ecx, STATE_SIZE)?;
    a.rep().movsb()?;
    a.mov(eax, dword_ptr(rbx + 12))?;
    a.mov(qword_ptr(u64::from(INPUT) + OFF_FLAGS as u64), rax)?;
    a.lea(rsi, qword_ptr(rbx + ENTRY_HEAD as i32))?;
    a.movzx(edx, word_ptr(rbx + 2))?;
    a.mov(edi, INPUT)?;
    a.call(load_masked)?;
    // EXPECTED = INPUT, with the entry's output flags and values.
    a.push(rsi)?;
    a.mov(esi, INPUT)?;
    a.mov(edi, EXPECTED)?;
    a.mov(ecx, STATE_SIZE)?;
    a.rep().movsb()?;
    a.pop(rsi)?;
    a.mov(eax, dword_ptr(rbx + 16))?;
    a.mov(qword_ptr(u64::from(EXPECTED) + OFF_FLAGS as u64), rax)?;
    a.movzx(edx, word_ptr(rbx + 4))?;
    a.mov(edi, EXPECTED)?;
    a.call(load_masked)?;
    // Name, then the snippet.
    a.mov(r14, rsi)?;
    a.set_label(&mut skip)?;
    a.lodsb()?;
    a.test(al, al)?;
    a.jnz(skip)?;
    a.push(rsi)?;
    a.mov(esi, INPUT)?;
    a.mov(edi, RUN)?;
    a.mov(ecx, STATE_SIZE)?;
    a.rep().movsb()?;
    a.pop(rsi)?;
    a.mov(qword_ptr(u64::from(RUN) + OFF_CODE as u64), rsi)?;
    a.mov(edi, RUN)?;
    a.call(harness)?;
    a.inc(r13d)?;
    // Compare registers.
    a.xor(r15d, r15d)?;
    a.xor(ecx, ecx)?;
    let (mut regloop, mut regnext) = (a.create_label(), a.create_label());
    a.set_label(&mut regloop)?;
    a.movzx(edx, word_ptr(rbx + 6))?;
    a.bt(edx, ecx)?;
    a.jc(regnext)?;
    a.mov(rax, qword_ptr(rcx * 8 + RUN as i32))?;
    a.cmp(rax, qword_ptr(rcx * 8 + EXPECTED as i32))?;
    a.je(regnext)?;
    a.call(fail_head)?;
    print(a, "  ")?;
    print_reg_name(a, true)?;
    print(a, " = ")?;
    hex(a)?;
    print(a, " expected ")?;
    a.mov(rax, qword_ptr(rcx * 8 + EXPECTED as i32))?;
    hex(a)?;
    print(a, "\n")?;
    a.set_label(&mut regnext)?;
    a.inc(ecx)?;
    a.cmp(ecx, NREGS as u32)?;
    a.jb(regloop)?;
    // Compare flags.
    let mut flags_ok = a.create_label();
    a.mov(eax, dword_ptr(u64::from(RUN) + OFF_FLAGS as u64))?;
    a.xor(eax, dword_ptr(u64::from(EXPECTED) + OFF_FLAGS as u64))?;
    a.and(eax, dword_ptr(rbx + 8))?;
    a.jz(flags_ok)?;
    a.call(fail_head)?;
    print(a, "  rflags = ")?;
    a.mov(eax, dword_ptr(u64::from(RUN) + OFF_FLAGS as u64))?;
    a.and(eax, dword_ptr(rbx + 8))?;
    hex(a)?;
    print(a, " expected ")?;
    a.mov(eax, dword_ptr(u64::from(EXPECTED) + OFF_FLAGS as u64))?;
    a.and(eax, dword_ptr(rbx + 8))?;
    hex(a)?;
    print(a, " (bits compared: ")?;
    a.mov(eax, dword_ptr(rbx + 8))?;
    hex(a)?;
    print(a, ")\n")?;
    a.set_label(&mut flags_ok)?;
    // Compare memory, 8 bytes at a time.
    let (mut mem_ok, mut memloop, mut memnext) = (a.create_label(), a.create_label(), a.create_label());
    a.movzx(edx, word_ptr(rbx + 6))?;
    a.bt(edx, 14)?;
    a.jc(mem_ok)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut memloop)?;
    a.mov(rax, qword_ptr(rcx * 8 + (RUN as i32 + OFF_MEM)))?;
    a.cmp(rax, qword_ptr(rcx * 8 + (EXPECTED as i32 + OFF_MEM)))?;
    a.je(memnext)?;
    a.call(fail_head)?;
    print(a, "  memory bytes ")?;
    a.push(rax)?;
    a.lea(eax, dword_ptr(rcx * 8))?;
    dec(a)?;
    a.pop(rax)?;
    print(a, "..+7 = ")?;
    hex(a)?;
    print(a, " expected ")?;
    a.mov(rax, qword_ptr(rcx * 8 + (EXPECTED as i32 + OFF_MEM)))?;
    hex(a)?;
    print(a, "\n")?;
    a.set_label(&mut memnext)?;
    a.inc(ecx)?;
    a.cmp(ecx, (MEM_SIZE / 8) as u32)?;
    a.jb(memloop)?;
    a.set_label(&mut mem_ok)?;
    let mut counted = a.create_label();
    a.test(r15d, r15d)?;
    a.jnz(counted)?;
    print(a, "ok ")?;
    a.mov(eax, r13d)?;
    dec(a)?;
    print(a, " ")?;
    a.mov(rsi, r14)?;
    puts(a)?;
    print(a, "\n")?;
    a.set_label(&mut counted)?;
    a.movzx(eax, word_ptr(rbx))?;
    a.add(rbx, rax)?;
    a.jmp(next)?;
    a.set_label(&mut done)?;
    a.mov(eax, r13d)?;
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r)?;
    }
    a.ret()?;

    // fail_head: the first mismatch of a check prints "FAIL n name" and counts the failure.
    let mut printed = a.create_label();
    a.set_label(&mut fail_head)?;
    a.test(r15d, r15d)?;
    a.jnz(printed)?;
    a.mov(r15d, 1)?;
    a.inc(qword_ptr(VAR_FAILS))?;
    a.push(rax)?;
    a.push(rsi)?;
    print(a, "FAIL ")?;
    a.mov(eax, r13d)?;
    dec(a)?;
    print(a, " ")?;
    a.mov(rsi, r14)?;
    puts(a)?;
    print(a, "\n")?;
    a.pop(rsi)?;
    a.pop(rax)?;
    a.set_label(&mut printed)?;
    a.ret()?;

    // load_masked: RDI = state, EDX = mask, RSI = values (advanced past those used).
    let (mut l, mut s, mut e) = (a.create_label(), a.create_label(), a.create_label());
    a.set_label(&mut load_masked)?;
    a.push(rcx)?;
    a.push(rax)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut l)?;
    a.bt(edx, ecx)?;
    a.jnc(s)?;
    a.mov(rax, qword_ptr(rsi))?;
    a.mov(qword_ptr(rdi + rcx * 8), rax)?;
    a.add(rsi, 8)?;
    a.set_label(&mut s)?;
    a.inc(ecx)?;
    a.cmp(ecx, NREGS as u32)?;
    a.jb(l)?;
    a.bt(edx, 14)?;
    a.jnc(e)?;
    a.push(rdi)?;
    a.add(rdi, OFF_MEM)?;
    a.mov(ecx, MEM_SIZE as u32)?;
    a.rep().movsb()?;
    a.pop(rdi)?;
    a.set_label(&mut e)?;
    a.pop(rax)?;
    a.pop(rcx)?;
    a.ret()?;

    a.set_label(&mut harness)?;
    harness64(a)
}

/// The 32-bit runner (`check32.run` / `check16.run`: ESI = table; returns EAX = checks run).
/// It compares the low 32 bits of RAX..RBP only. In 16-bit code every address must be below
/// 64 KiB (real mode with DS = 0).
fn runner32(a: &mut Asm) -> R {
    let p = format!("check{}", a.bitness());
    let mut harness = a.create_label();
    let mut load_masked = a.create_label();
    let mut fail_head = a.create_label();
    let (mut next, mut done, mut skip) = (a.create_label(), a.create_label(), a.create_label());
    a.export(&format!("{p}.run"))?;
    a.push(ebx)?;
    a.push(ebp)?;
    a.push(esi)?;
    a.push(edi)?;
    a.cld()?;
    a.mov(dword_ptr(V_PATTERN), esi)?;
    a.lea(ebx, dword_ptr(esi + STATE_SIZE as i32))?;
    a.mov(dword_ptr(V_COUNT), 0)?;
    a.set_label(&mut next)?;
    a.movzx(eax, word_ptr(ebx))?;
    a.test(eax, eax)?;
    a.jz(done)?;
    a.mov(esi, dword_ptr(V_PATTERN))?;
    a.mov(edi, INPUT)?;
    a.mov(ecx, STATE_SIZE)?;
    a.rep().movsb()?;
    a.mov(eax, dword_ptr(ebx + 12))?;
    a.mov(dword_ptr(INPUT + OFF_FLAGS as u32), eax)?;
    a.lea(esi, dword_ptr(ebx + ENTRY_HEAD as i32))?;
    a.movzx(edx, word_ptr(ebx + 2))?;
    a.mov(edi, INPUT)?;
    a.call(load_masked)?;
    a.push(esi)?;
    a.mov(esi, INPUT)?;
    a.mov(edi, EXPECTED)?;
    a.mov(ecx, STATE_SIZE)?;
    a.rep().movsb()?;
    a.pop(esi)?;
    a.mov(eax, dword_ptr(ebx + 16))?;
    a.mov(dword_ptr(EXPECTED + OFF_FLAGS as u32), eax)?;
    a.movzx(edx, word_ptr(ebx + 4))?;
    a.mov(edi, EXPECTED)?;
    a.call(load_masked)?;
    a.mov(dword_ptr(V_NAME), esi)?;
    a.set_label(&mut skip)?;
    a.lodsb()?;
    a.test(al, al)?;
    a.jnz(skip)?;
    a.push(esi)?;
    a.mov(esi, INPUT)?;
    a.mov(edi, RUN)?;
    a.mov(ecx, STATE_SIZE)?;
    a.rep().movsb()?;
    a.pop(esi)?;
    a.mov(dword_ptr(RUN + OFF_CODE as u32), esi)?;
    a.call(harness)?;
    a.inc(dword_ptr(V_COUNT))?;
    a.mov(dword_ptr(V_FAILED), 0)?;
    // Compare the low halves of RAX..RBP.
    let (mut regloop, mut regnext) = (a.create_label(), a.create_label());
    a.xor(ecx, ecx)?;
    a.set_label(&mut regloop)?;
    a.movzx(edx, word_ptr(ebx + 6))?;
    a.bt(edx, ecx)?;
    a.jc(regnext)?;
    a.mov(eax, dword_ptr(ecx * 8 + RUN as i32))?;
    a.cmp(eax, dword_ptr(ecx * 8 + EXPECTED as i32))?;
    a.je(regnext)?;
    a.call(fail_head)?;
    print(a, "  ")?;
    print_reg_name(a, false)?;
    print(a, " (low 32 bits) = ")?;
    hex(a)?;
    print(a, " expected ")?;
    a.mov(eax, dword_ptr(ecx * 8 + EXPECTED as i32))?;
    hex(a)?;
    print(a, "\n")?;
    a.set_label(&mut regnext)?;
    a.inc(ecx)?;
    a.cmp(ecx, 7)?;
    a.jb(regloop)?;
    let mut flags_ok = a.create_label();
    a.mov(eax, dword_ptr(RUN + OFF_FLAGS as u32))?;
    a.xor(eax, dword_ptr(EXPECTED + OFF_FLAGS as u32))?;
    a.and(eax, dword_ptr(ebx + 8))?;
    a.jz(flags_ok)?;
    a.call(fail_head)?;
    print(a, "  eflags = ")?;
    a.mov(eax, dword_ptr(RUN + OFF_FLAGS as u32))?;
    a.and(eax, dword_ptr(ebx + 8))?;
    hex(a)?;
    print(a, " expected ")?;
    a.mov(eax, dword_ptr(EXPECTED + OFF_FLAGS as u32))?;
    a.and(eax, dword_ptr(ebx + 8))?;
    hex(a)?;
    print(a, " (bits compared: ")?;
    a.mov(eax, dword_ptr(ebx + 8))?;
    hex(a)?;
    print(a, ")\n")?;
    a.set_label(&mut flags_ok)?;
    let (mut mem_ok, mut memloop, mut memnext) = (a.create_label(), a.create_label(), a.create_label());
    a.movzx(edx, word_ptr(ebx + 6))?;
    a.bt(edx, 14)?;
    a.jc(mem_ok)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut memloop)?;
    a.mov(eax, dword_ptr(ecx * 4 + (RUN as i32 + OFF_MEM)))?;
    a.cmp(eax, dword_ptr(ecx * 4 + (EXPECTED as i32 + OFF_MEM)))?;
    a.je(memnext)?;
    a.call(fail_head)?;
    print(a, "  memory bytes ")?;
    a.push(eax)?;
    a.lea(eax, dword_ptr(ecx * 4))?;
    dec(a)?;
    a.pop(eax)?;
    print(a, "..+3 = ")?;
    hex(a)?;
    print(a, " expected ")?;
    a.mov(eax, dword_ptr(ecx * 4 + (EXPECTED as i32 + OFF_MEM)))?;
    hex(a)?;
    print(a, "\n")?;
    a.set_label(&mut memnext)?;
    a.inc(ecx)?;
    a.cmp(ecx, (MEM_SIZE / 4) as u32)?;
    a.jb(memloop)?;
    a.set_label(&mut mem_ok)?;
    let mut counted = a.create_label();
    a.cmp(dword_ptr(V_FAILED), 0)?;
    a.jne(counted)?;
    print(a, "ok ")?;
    a.mov(eax, dword_ptr(V_COUNT))?;
    dec(a)?;
    print(a, " ")?;
    a.mov(esi, dword_ptr(V_NAME))?;
    puts(a)?;
    print(a, "\n")?;
    a.set_label(&mut counted)?;
    a.movzx(eax, word_ptr(ebx))?;
    a.add(ebx, eax)?;
    a.jmp(next)?;
    a.set_label(&mut done)?;
    a.mov(eax, dword_ptr(V_COUNT))?;
    a.pop(edi)?;
    a.pop(esi)?;
    a.pop(ebp)?;
    a.pop(ebx)?;
    a.ret()?;

    let mut printed = a.create_label();
    a.set_label(&mut fail_head)?;
    a.cmp(dword_ptr(V_FAILED), 0)?;
    a.jne(printed)?;
    a.mov(dword_ptr(V_FAILED), 1)?;
    a.inc(dword_ptr(VAR_FAILS as u32))?;
    a.push(eax)?;
    a.push(esi)?;
    print(a, "FAIL ")?;
    a.mov(eax, dword_ptr(V_COUNT))?;
    dec(a)?;
    print(a, " ")?;
    a.mov(esi, dword_ptr(V_NAME))?;
    puts(a)?;
    print(a, "\n")?;
    a.pop(esi)?;
    a.pop(eax)?;
    a.set_label(&mut printed)?;
    a.ret()?;

    // load_masked: EDI = state, EDX = mask, ESI = values (8 bytes each; advanced).
    let (mut l, mut s, mut e) = (a.create_label(), a.create_label(), a.create_label());
    a.set_label(&mut load_masked)?;
    a.push(ecx)?;
    a.push(eax)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut l)?;
    a.bt(edx, ecx)?;
    a.jnc(s)?;
    a.mov(eax, dword_ptr(esi))?;
    a.mov(dword_ptr(edi + ecx * 8), eax)?;
    a.mov(eax, dword_ptr(esi + 4))?;
    a.mov(dword_ptr(edi + ecx * 8 + 4), eax)?;
    a.add(esi, 8)?;
    a.set_label(&mut s)?;
    a.inc(ecx)?;
    a.cmp(ecx, NREGS as u32)?;
    a.jb(l)?;
    a.bt(edx, 14)?;
    a.jnc(e)?;
    a.push(edi)?;
    a.add(edi, OFF_MEM)?;
    a.mov(ecx, MEM_SIZE as u32)?;
    a.rep().movsb()?;
    a.pop(edi)?;
    a.set_label(&mut e)?;
    a.pop(eax)?;
    a.pop(ecx)?;
    a.ret()?;

    a.set_label(&mut harness)?;
    harness32(a)
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
        let mut s = format!("{}: {} checks, expected values from the host CPU\n", self.title, self.checks.len());
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
        let header = format!("{}: {} checks, expected values from the host CPU\n", self.title, self.checks.len());
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
                assert!(table.len() as u64 <= layout::REAL_TABLE_MAX, "{}: table too large for real mode", self.rom);
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
