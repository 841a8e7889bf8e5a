//! Self-modifying code in long mode (SDM Vol. 3A §8.1.3): code copied to RAM is changed by
//! data writes and run again; a store that changes the very next instruction, or one a few
//! instructions further in the same straight line; a loop that rewrites its own immediate on
//! every iteration; and a write through another virtual address of the same physical page.
//! Current processors detect all of these (the SDM's advice to jump after modifying code is
//! for older ones), and so must every engine that caches decoded or translated code.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot;
use crate::asm::tables::pte;
use crate::asm::*;

const EXPECTED: &str = "\
self-modifying code
call the copied function = 0x11111111 ok
after patching its immediate = 0x22222222 ok
a store into the next instruction = 0x42 ok
a store three instructions ahead = 0x4343 ok
a loop rewriting its own immediate (last value seen) = 0x9 ok
after patching through an alias mapping = 0x33333333 ok
all checks passed
";

/// Physical (and identity) address of the code copied to RAM.
const CODE: u64 = 0x30_0000;
/// Another virtual address of the same page.
const ALIAS: u64 = 0xc000_0000;
/// Offsets of the functions in the code page.
const F_IMM: u64 = 0x000;
const F_NEXT: u64 = 0x100;
const F_AHEAD: u64 = 0x200;
const F_LOOP: u64 = 0x300;

/// The functions that get patched, assembled at their RAM addresses.
fn ram_code() -> Vec<u8> {
    let mut page = vec![0xccu8; 0x400];
    let mut put = |off: u64, f: &dyn Fn(&mut CodeAssembler) -> R| {
        let b = rom::assemble(64, CODE + off, |a| f(a));
        page[off as usize..off as usize + b.len()].copy_from_slice(&b);
    };
    // mov eax, 0x11111111; ret (the immediate is at offset 1).
    put(F_IMM, &|a| {
        a.mov(eax, 0x1111_1111u32)?;
        a.ret()
    });
    // The store changes the immediate of the MOV right after it. (The MOVs are spelled out
    // as bytes so a label can point at their immediates.)
    put(F_NEXT, &|a| {
        let mut imm = a.create_label();
        a.mov(byte_ptr(imm), 0x42)?;
        a.db(&[0xb0])?; // mov al, imm8
        a.set_label(&mut imm)?;
        a.db(&[0x11])?;
        a.ret()
    });
    put(F_AHEAD, &|a| {
        let mut imm = a.create_label();
        a.mov(word_ptr(imm), 0x4343)?;
        a.nop()?;
        a.xor(ecx, ecx)?;
        a.db(&[0x66, 0xb8])?; // mov ax, imm16
        a.set_label(&mut imm)?;
        a.dw(&[0x1111])?;
        a.ret()
    });
    // ECX iterations; each one bumps the immediate of the MOV at the top.
    put(F_LOOP, &|a| {
        let (mut top, mut imm) = (a.create_label(), a.create_label());
        a.set_label(&mut top)?;
        a.db(&[0xb8])?; // mov eax, imm32
        a.set_label(&mut imm)?;
        a.dd(&[0])?;
        a.inc(dword_ptr(imm))?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.ret()
    });
    page
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("modes/selfmod");
    let mut pt = boot::long_mode_tables();
    pt.map(ALIAS, CODE, 12, pte::RW);
    rom.ram(RamInit::Bytes(CODE, ram_code()));
    boot::standard_long(&mut rom, &pt, "main", false);
    rom.code64("main", |a| {
        print(a, "self-modifying code\n")?;
        a.mov(rbx, CODE + F_IMM)?;
        a.call(rbx)?;
        check(a, "call the copied function", 0x1111_1111)?;
        a.mov(dword_ptr(CODE + F_IMM + 1), 0x2222_2222)?;
        a.call(rbx)?;
        check(a, "after patching its immediate", 0x2222_2222)?;

        a.xor(eax, eax)?;
        a.mov(rbx, CODE + F_NEXT)?;
        a.call(rbx)?;
        a.movzx(eax, al)?;
        check(a, "a store into the next instruction", 0x42)?;

        a.xor(eax, eax)?;
        a.mov(rbx, CODE + F_AHEAD)?;
        a.call(rbx)?;
        a.movzx(eax, ax)?;
        check(a, "a store three instructions ahead", 0x4343)?;

        a.mov(ecx, 10)?;
        a.mov(rbx, CODE + F_LOOP)?;
        a.call(rbx)?;
        check(a, "a loop rewriting its own immediate (last value seen)", 9)?;

        // Run the function once more through its identity address (caching it), then patch
        // it through the alias and run it again.
        a.mov(rbx, CODE + F_IMM)?;
        a.call(rbx)?;
        a.mov(rcx, ALIAS + F_IMM + 1)?;
        a.mov(dword_ptr(rcx), 0x3333_3333)?;
        a.call(rbx)?;
        check(a, "after patching through an alias mapping", 0x3333_3333)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
