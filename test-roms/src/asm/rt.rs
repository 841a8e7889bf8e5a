//! The runtime every ROM carries, once per processor mode (pieces `rt16`, `rt32`, `rt64`):
//! printing to COM1 (a character, an inline string, a hex or decimal number), checking a value
//! against its expected value, and the final verdict on the debug-exit port. Plus `ram_init`,
//! which writes the ROM's tables into RAM at boot. The `print`/`check`/... functions below emit
//! the calls, so a ROM reads like `print(a, "hello\n")?`.
//!
//! Conventions: every routine preserves every register (flags excepted). In 16-bit code the
//! inline strings are read through CS and everything else through DS, which must have base 0
//! (real mode with DS = 0, or DATA16 in 16-bit protected mode).

use iced_x86::code_asm::*;

use super::layout::{COM1, COM1_LSR, DEBUG_EXIT, VAR_FAILS};
use super::rom::{Asm, R};

fn prefix(a: &Asm) -> String {
    format!("rt{}", a.bitness())
}

/// Print `s` (use `\n` for a new line; the runtime sends `\r\n`).
pub fn print(a: &mut Asm, s: &str) -> R {
    let p = prefix(a);
    a.call_sym(&format!("{p}.print"))?;
    a.asciz(s)
}

/// Print RAX/EAX as `0x...` (no leading zeros).
pub fn hex(a: &mut Asm) -> R {
    let p = prefix(a);
    a.call_sym(&format!("{p}.hex"))
}

/// Print RAX/EAX in decimal.
pub fn dec(a: &mut Asm) -> R {
    let p = prefix(a);
    a.call_sym(&format!("{p}.dec"))
}

/// Print a NUL-terminated string at RSI/ESI (DS:SI in 16-bit code).
pub fn puts(a: &mut Asm) -> R {
    let p = prefix(a);
    a.call_sym(&format!("{p}.puts"))
}

fn check_call(a: &mut Asm, routine: &str, label: &str, expected: u64) -> R {
    let p = prefix(a);
    if a.bitness() == 64 {
        a.push(rbx)?;
        a.mov(rbx, expected)?;
    } else {
        a.push(ebx)?;
        a.mov(ebx, expected as u32)?;
    }
    a.call_sym(&format!("{p}.{routine}"))?;
    a.asciz(label)?;
    if a.bitness() == 64 {
        a.pop(rbx)
    } else {
        a.pop(ebx)
    }
}

/// Print `label = <RAX>` and " ok", or " FAIL expected <expected>" (counting the failure).
pub fn check(a: &mut Asm, label: &str, expected: u64) -> R {
    check_call(a, "check", label, expected)
}

/// Like `check` but prints the values only on failure (for addresses, which would make
/// the expected output depend on the ROM's layout).
pub fn check_quiet(a: &mut Asm, label: &str, expected: u64) -> R {
    check_call(a, "check_quiet", label, expected)
}

/// Compare RAX/EAX with RBX/EBX (set by the caller), printing like `check_quiet`.
pub fn check_rbx_quiet(a: &mut Asm, label: &str) -> R {
    let p = prefix(a);
    a.call_sym(&format!("{p}.check_quiet"))?;
    a.asciz(label)
}

/// Load the 8-byte (4-byte outside 64-bit mode) variable at `addr` into RAX/EAX and `check` it.
pub fn check_var(a: &mut Asm, label: &str, addr: u64, expected: u64) -> R {
    load_var(a, addr)?;
    check(a, label, expected)
}

/// RAX/EAX = the variable at `addr`.
pub fn load_var(a: &mut Asm, addr: u64) -> R {
    if a.bitness() == 64 {
        a.mov(rax, qword_ptr(addr))
    } else {
        a.mov(eax, dword_ptr(addr as u32))
    }
}

/// Print the verdict and end the test: writes 0 (all passed) or 1 to the debug-exit port.
pub fn exit(a: &mut Asm) -> R {
    let p = prefix(a);
    a.call_sym(&format!("{p}.exit"))
}

/// Add the three runtime pieces to a ROM.
pub(crate) fn add_runtime(pieces: &mut Vec<super::rom::Piece>) {
    pieces.push(super::rom::Piece::code(16, "rt16", runtime32_or_16));
    pieces.push(super::rom::Piece::code(32, "rt32", |a| {
        runtime32_or_16(a)?;
        ram_init32(a)
    }));
    pieces.push(super::rom::Piece::code(64, "rt64", runtime64));
}

/// COM1 output of AL, translating `\n` to `\r\n`: `putc`.
fn putc(a: &mut Asm, p: &str) -> R {
    let mut raw = a.create_label();
    let mut wait = a.create_label();
    let mut not_nl = a.create_label();
    a.export(&format!("{p}.putc"))?;
    let wide = a.bitness() == 64;
    if wide {
        a.push(rdx)?;
        a.push(rax)?;
    } else {
        a.push(edx)?;
        a.push(eax)?;
    }
    a.cmp(al, 10)?;
    a.jne(not_nl)?;
    a.mov(al, 13)?;
    a.call(raw)?;
    a.mov(al, 10)?;
    a.set_label(&mut not_nl)?;
    a.call(raw)?;
    if wide {
        a.pop(rax)?;
        a.pop(rdx)?;
    } else {
        a.pop(eax)?;
        a.pop(edx)?;
    }
    a.ret()?;
    // Wait until the transmitter holding register is empty, then send AL.
    a.set_label(&mut raw)?;
    a.mov(ah, al)?;
    a.mov(dx, u32::from(COM1_LSR))?;
    a.set_label(&mut wait)?;
    a.in_(al, dx)?;
    a.test(al, 0x20)?;
    a.jz(wait)?;
    a.mov(al, ah)?;
    a.mov(dx, u32::from(COM1))?;
    a.out(dx, al)?;
    a.ret()
}

/// The 32-bit runtime; in 16-bit code the same instructions get operand/address-size
/// prefixes, with the return address a 16-bit word and inline strings read through CS.
fn runtime32_or_16(a: &mut Asm) -> R {
    let bits = a.bitness();
    let p = prefix(a);
    let p = p.as_str();
    putc(a, p)?;
    let putc_addr = format!("{p}.putc");

    // from_cs: print the string at ESI (through CS in 16-bit code) and leave ESI after its NUL.
    let mut from_cs = a.create_label();
    let mut l = a.create_label();
    let mut d = a.create_label();
    a.set_label(&mut from_cs)?;
    a.push(eax)?;
    a.set_label(&mut l)?;
    if bits == 16 {
        a.mov(al, byte_ptr(esi).cs())?;
    } else {
        a.mov(al, byte_ptr(esi))?;
    }
    a.inc(esi)?;
    a.test(al, al)?;
    a.jz(d)?;
    a.call_sym(&putc_addr)?;
    a.jmp(l)?;
    a.set_label(&mut d)?;
    a.pop(eax)?;
    a.ret()?;

    // Inline-string helpers: swap ESI with the return address, print, swap back.
    let ret_in = |a: &mut Asm| -> R {
        if bits == 16 {
            a.movzx(esi, word_ptr(esp + 4))
        } else {
            a.mov(esi, dword_ptr(esp + 4))
        }
    };
    let ret_out = |a: &mut Asm| -> R {
        if bits == 16 {
            a.mov(word_ptr(esp + 4), si)
        } else {
            a.mov(dword_ptr(esp + 4), esi)
        }
    };

    // print: the NUL-terminated string that follows the call.
    let mut print = a.create_label();
    a.set_label(&mut print)?;
    a.export_label(&format!("{p}.print"), print);
    a.push(esi)?;
    ret_in(a)?;
    a.call(from_cs)?;
    ret_out(a)?;
    a.pop(esi)?;
    a.ret()?;

    // puts: the string at DS:ESI.
    a.export(&format!("{p}.puts"))?;
    let mut l = a.create_label();
    let mut d = a.create_label();
    a.push(esi)?;
    a.push(eax)?;
    a.set_label(&mut l)?;
    a.mov(al, byte_ptr(esi))?;
    a.inc(esi)?;
    a.test(al, al)?;
    a.jz(d)?;
    a.call_sym(&putc_addr)?;
    a.jmp(l)?;
    a.set_label(&mut d)?;
    a.pop(eax)?;
    a.pop(esi)?;
    a.ret()?;

    // hex: EAX as 0x..., no leading zeros.
    let mut hex = a.create_label();
    a.set_label(&mut hex)?;
    a.export_label(&format!("{p}.hex"), hex);
    let mut skip = a.create_label();
    let mut digits = a.create_label();
    let mut num = a.create_label();
    a.push(eax)?;
    a.push(ecx)?;
    a.push(edx)?;
    a.mov(edx, eax)?;
    a.mov(al, b'0' as u32)?;
    a.call_sym(&putc_addr)?;
    a.mov(al, b'x' as u32)?;
    a.call_sym(&putc_addr)?;
    a.mov(ecx, 28)?;
    a.set_label(&mut skip)?;
    a.mov(eax, edx)?;
    a.shr(eax, cl)?;
    a.test(eax, eax)?;
    a.jnz(digits)?;
    a.sub(ecx, 4)?;
    a.jnz(skip)?;
    a.set_label(&mut digits)?;
    a.mov(eax, edx)?;
    a.shr(eax, cl)?;
    a.and(eax, 15)?;
    a.cmp(al, 10)?;
    a.jb(num)?;
    a.add(al, 39)?;
    a.set_label(&mut num)?;
    a.add(al, 48)?;
    a.call_sym(&putc_addr)?;
    a.sub(ecx, 4)?;
    a.jns(digits)?;
    a.pop(edx)?;
    a.pop(ecx)?;
    a.pop(eax)?;
    a.ret()?;

    // dec: EAX in decimal.
    let mut dec = a.create_label();
    a.set_label(&mut dec)?;
    a.export_label(&format!("{p}.dec"), dec);
    let mut d1 = a.create_label();
    let mut d2 = a.create_label();
    a.push(eax)?;
    a.push(ebx)?;
    a.push(ecx)?;
    a.push(edx)?;
    a.mov(ebx, 10)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut d1)?;
    a.xor(edx, edx)?;
    a.div(ebx)?;
    a.push(edx)?;
    a.inc(ecx)?;
    a.test(eax, eax)?;
    a.jnz(d1)?;
    a.set_label(&mut d2)?;
    a.pop(eax)?;
    a.add(al, b'0' as u32)?;
    a.call_sym(&putc_addr)?;
    a.dec(ecx)?;
    a.jnz(d2)?;
    a.pop(edx)?;
    a.pop(ecx)?;
    a.pop(ebx)?;
    a.pop(eax)?;
    a.ret()?;

    // check / check_quiet: EAX actual, EBX expected, label inline.
    for quiet in [false, true] {
        a.export(&format!(
            "{p}.{}",
            if quiet { "check_quiet" } else { "check" }
        ))?;
        let mut ok = a.create_label();
        let mut end = a.create_label();
        a.push(esi)?;
        ret_in(a)?;
        a.call(from_cs)?;
        ret_out(a)?;
        a.pop(esi)?;
        if !quiet {
            a.call(print)?;
            a.asciz(" = ")?;
            a.call(hex)?;
        }
        a.cmp(eax, ebx)?;
        a.je(ok)?;
        if quiet {
            a.call(print)?;
            a.asciz(" FAIL: got ")?;
            a.call(hex)?;
            a.call(print)?;
            a.asciz(" expected ")?;
        } else {
            a.call(print)?;
            a.asciz(" FAIL expected ")?;
        }
        a.xchg(eax, ebx)?;
        a.call(hex)?;
        a.xchg(eax, ebx)?;
        a.call(print)?;
        a.asciz("\n")?;
        a.inc(dword_ptr(VAR_FAILS as u32))?;
        a.jmp(end)?;
        a.set_label(&mut ok)?;
        a.call(print)?;
        a.asciz(" ok\n")?;
        a.set_label(&mut end)?;
        a.ret()?;
    }

    // exit: the verdict.
    a.export(&format!("{p}.exit"))?;
    let mut bad = a.create_label();
    let mut out = a.create_label();
    let mut stop = a.create_label();
    a.mov(eax, dword_ptr(VAR_FAILS as u32))?;
    a.test(eax, eax)?;
    a.jnz(bad)?;
    a.call(print)?;
    a.asciz("all checks passed\n")?;
    a.xor(eax, eax)?;
    a.jmp(out)?;
    a.set_label(&mut bad)?;
    a.call(print)?;
    a.asciz("checks failed: ")?;
    a.call(dec)?;
    a.call(print)?;
    a.asciz("\n")?;
    a.mov(eax, 1)?;
    a.set_label(&mut out)?;
    a.mov(dx, u32::from(DEBUG_EXIT))?;
    a.out(dx, al)?;
    a.set_label(&mut stop)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(stop)
}

/// The 64-bit runtime: the same routines with 64-bit registers.
fn runtime64(a: &mut Asm) -> R {
    let p = "rt64";
    putc(a, p)?;
    let putc_addr = "rt64.putc";

    let mut from = a.create_label();
    let mut l = a.create_label();
    let mut d = a.create_label();
    a.set_label(&mut from)?;
    a.push(rax)?;
    a.set_label(&mut l)?;
    a.mov(al, byte_ptr(rsi))?;
    a.inc(rsi)?;
    a.test(al, al)?;
    a.jz(d)?;
    a.call_sym(putc_addr)?;
    a.jmp(l)?;
    a.set_label(&mut d)?;
    a.pop(rax)?;
    a.ret()?;

    let mut print = a.create_label();
    a.set_label(&mut print)?;
    a.export_label("rt64.print", print);
    a.xchg(qword_ptr(rsp), rsi)?;
    a.call(from)?;
    a.xchg(qword_ptr(rsp), rsi)?;
    a.ret()?;

    a.export("rt64.puts")?;
    a.push(rsi)?;
    a.call(from)?;
    a.pop(rsi)?;
    a.ret()?;

    let mut hex = a.create_label();
    a.set_label(&mut hex)?;
    a.export_label("rt64.hex", hex);
    let mut skip = a.create_label();
    let mut digits = a.create_label();
    let mut num = a.create_label();
    a.push(rax)?;
    a.push(rcx)?;
    a.push(rdx)?;
    a.mov(rdx, rax)?;
    a.mov(al, b'0' as u32)?;
    a.call_sym(putc_addr)?;
    a.mov(al, b'x' as u32)?;
    a.call_sym(putc_addr)?;
    a.mov(ecx, 60)?;
    a.set_label(&mut skip)?;
    a.mov(rax, rdx)?;
    a.shr(rax, cl)?;
    a.test(rax, rax)?;
    a.jnz(digits)?;
    a.sub(ecx, 4)?;
    a.jnz(skip)?;
    a.set_label(&mut digits)?;
    a.mov(rax, rdx)?;
    a.shr(rax, cl)?;
    a.and(eax, 15)?;
    a.cmp(al, 10)?;
    a.jb(num)?;
    a.add(al, 39)?;
    a.set_label(&mut num)?;
    a.add(al, 48)?;
    a.call_sym(putc_addr)?;
    a.sub(ecx, 4)?;
    a.jns(digits)?;
    a.pop(rdx)?;
    a.pop(rcx)?;
    a.pop(rax)?;
    a.ret()?;

    let mut dec = a.create_label();
    a.set_label(&mut dec)?;
    a.export_label("rt64.dec", dec);
    let mut d1 = a.create_label();
    let mut d2 = a.create_label();
    a.push(rax)?;
    a.push(rbx)?;
    a.push(rcx)?;
    a.push(rdx)?;
    a.mov(ebx, 10)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut d1)?;
    a.xor(edx, edx)?;
    a.div(rbx)?;
    a.push(rdx)?;
    a.inc(ecx)?;
    a.test(rax, rax)?;
    a.jnz(d1)?;
    a.set_label(&mut d2)?;
    a.pop(rax)?;
    a.add(al, b'0' as u32)?;
    a.call_sym(putc_addr)?;
    a.dec(ecx)?;
    a.jnz(d2)?;
    a.pop(rdx)?;
    a.pop(rcx)?;
    a.pop(rbx)?;
    a.pop(rax)?;
    a.ret()?;

    for quiet in [false, true] {
        a.export(if quiet {
            "rt64.check_quiet"
        } else {
            "rt64.check"
        })?;
        let mut ok = a.create_label();
        let mut end = a.create_label();
        a.xchg(qword_ptr(rsp), rsi)?;
        a.call(from)?;
        a.xchg(qword_ptr(rsp), rsi)?;
        if !quiet {
            a.call(print)?;
            a.asciz(" = ")?;
            a.call(hex)?;
        }
        a.cmp(rax, rbx)?;
        a.je(ok)?;
        if quiet {
            a.call(print)?;
            a.asciz(" FAIL: got ")?;
            a.call(hex)?;
            a.call(print)?;
            a.asciz(" expected ")?;
        } else {
            a.call(print)?;
            a.asciz(" FAIL expected ")?;
        }
        a.xchg(rax, rbx)?;
        a.call(hex)?;
        a.xchg(rax, rbx)?;
        a.call(print)?;
        a.asciz("\n")?;
        a.inc(qword_ptr(VAR_FAILS))?;
        a.jmp(end)?;
        a.set_label(&mut ok)?;
        a.call(print)?;
        a.asciz(" ok\n")?;
        a.set_label(&mut end)?;
        a.ret()?;
    }

    a.export("rt64.exit")?;
    let mut bad = a.create_label();
    let mut out = a.create_label();
    let mut stop = a.create_label();
    a.mov(rax, qword_ptr(VAR_FAILS))?;
    a.test(rax, rax)?;
    a.jnz(bad)?;
    a.call(print)?;
    a.asciz("all checks passed\n")?;
    a.xor(eax, eax)?;
    a.jmp(out)?;
    a.set_label(&mut bad)?;
    a.call(print)?;
    a.asciz("checks failed: ")?;
    a.call(dec)?;
    a.call(print)?;
    a.asciz("\n")?;
    a.mov(eax, 1)?;
    a.set_label(&mut out)?;
    a.mov(dx, u32::from(DEBUG_EXIT))?;
    a.out(dx, al)?;
    a.set_label(&mut stop)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(stop)
}

/// `rt32.ram_init`: apply the RAM-init records at ESI (flat 32-bit protected mode).
/// Each record is `u32 address, u32 count, u32 kind` followed by its payload (see
/// `rom::record`); kind 0xff ends the list.
fn ram_init32(a: &mut Asm) -> R {
    use super::rom::record;
    a.export("rt32.ram_init")?;
    let mut next = a.create_label();
    let mut copy = a.create_label();
    let mut zero = a.create_label();
    let mut run64 = a.create_label();
    let mut run32 = a.create_label();
    let mut l64 = a.create_label();
    let mut l32 = a.create_label();
    let mut done = a.create_label();
    a.pushad()?;
    a.cld()?;
    a.set_label(&mut next)?;
    a.lodsd()?;
    a.mov(edi, eax)?;
    a.lodsd()?;
    a.mov(ecx, eax)?;
    a.lodsd()?;
    a.cmp(eax, record::COPY)?;
    a.je(copy)?;
    a.cmp(eax, record::ZERO)?;
    a.je(zero)?;
    a.cmp(eax, record::RUN64)?;
    a.je(run64)?;
    a.cmp(eax, record::RUN32)?;
    a.je(run32)?;
    a.jmp(done)?;
    a.set_label(&mut copy)?;
    a.rep().movsb()?;
    a.jmp(next)?;
    a.set_label(&mut zero)?;
    a.xor(eax, eax)?;
    a.rep().stosb()?;
    a.jmp(next)?;
    // run64: EDX:EBX = value, EBP = low half of the step, [ESI-4] = its high half.
    a.set_label(&mut run64)?;
    a.mov(ebx, dword_ptr(esi))?;
    a.mov(edx, dword_ptr(esi + 4))?;
    a.mov(ebp, dword_ptr(esi + 8))?;
    a.add(esi, 16)?;
    a.set_label(&mut l64)?;
    a.mov(dword_ptr(edi), ebx)?;
    a.mov(dword_ptr(edi + 4), edx)?;
    a.add(ebx, ebp)?;
    a.adc(edx, dword_ptr(esi - 4))?;
    a.add(edi, 8)?;
    a.dec(ecx)?;
    a.jnz(l64)?;
    a.jmp(next)?;
    a.set_label(&mut run32)?;
    a.mov(ebx, dword_ptr(esi))?;
    a.mov(ebp, dword_ptr(esi + 4))?;
    a.add(esi, 8)?;
    a.set_label(&mut l32)?;
    a.mov(dword_ptr(edi), ebx)?;
    a.add(ebx, ebp)?;
    a.add(edi, 4)?;
    a.dec(ecx)?;
    a.jnz(l32)?;
    a.jmp(next)?;
    a.set_label(&mut done)?;
    a.popad()?;
    a.ret()
}
