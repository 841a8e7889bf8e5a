//! The guest side of the instruction checks: the runners that walk a check table in 64-bit
//! mode (`check64.run`) and in 32-bit protected or real mode (`check32.run`, `check16.run`),
//! and the 32/16-bit harness they call snippets through (the 64-bit one is `harness64`,
//! shared with the host).

use iced_x86::code_asm::*;

use super::{
    ENTRY_HEAD, MEM_SIZE, NREGS, OFF_CODE, OFF_FLAGS, OFF_MEM, REG_NAMES, STATE_SIZE, harness64,
};
use crate::asm::layout::{self, VAR_FAILS, VARS};
use crate::asm::rom::{Asm, R};
use crate::asm::rt::{dec, hex, print, puts};

/// The 32-bit harness (16-bit code: the same with prefixes, and a far call so snippets can
/// live anywhere below 1 MiB): the state block is at `layout::CHECK_STATE`.
fn harness32(a: &mut Asm) -> R {
    let st = layout::CHECK_STATE as u32;
    let regs: [(AsmRegister32, u32); 7] = [
        (eax, 0),
        (ebx, 8),
        (ecx, 16),
        (edx, 24),
        (esi, 32),
        (edi, 40),
        (ebp, 48),
    ];
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
        let name = if wide {
            name.to_string()
        } else {
            name.replacen('r', "e", 1)
        };
        print(a, &name)?;
        a.jmp(end)?;
        a.set_label(&mut other)?;
        a.nop()?;
    }
    a.set_label(&mut end)?;
    a.nop()
}

/// The 64-bit runner (`check64.run`: RSI = table; returns EAX = checks run) and harness.
pub(super) fn runner64(a: &mut Asm) -> R {
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
    let (mut mem_ok, mut memloop, mut memnext) =
        (a.create_label(), a.create_label(), a.create_label());
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
pub(super) fn runner32(a: &mut Asm) -> R {
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
    let (mut mem_ok, mut memloop, mut memnext) =
        (a.create_label(), a.create_label(), a.create_label());
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
