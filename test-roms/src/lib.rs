//! Self-checking guest programs for vx, assembled in Rust with iced-x86 `code_asm`. Each ROM
//! is a BIOS image (as for QEMU `-bios`) that prints to COM1 and writes its verdict to the
//! debug-exit port 0xf4.

use iced_x86::code_asm::*;

/// Size of every ROM image: 64 KiB, aliased at 0xF0000 and at 0xFFFF0000.
pub const ROM_SIZE: usize = 64 * 1024;
/// Physical address of the ROM's first byte in the alias below 1 MiB.
pub const ROM_BASE: u64 = 0xf_0000;

/// Place 16-bit code at ROM offset 0 and a reset vector jumping to it.
pub fn rom_from_real_mode(code: &[u8]) -> Vec<u8> {
    let mut rom = vec![0xf4u8; ROM_SIZE];
    rom[..code.len()].copy_from_slice(code);
    // Reset vector at F000:FFF0: jmp far F000:0000.
    rom[0xfff0..0xfff5].copy_from_slice(&[0xea, 0x00, 0x00, 0x00, 0xf0]);
    rom
}

/// The built-in demo (minimal version: prints a line and exits 0).
pub fn demo() -> Vec<u8> {
    let mut a = CodeAssembler::new(16).expect("16-bit assembler");
    let msg = b"vx demo: hello from real mode\r\n";
    let mut lbl = a.create_label();
    a.mov(si, 0u32).expect("asm");
    a.mov(ax, 0xf000u32).expect("asm");
    a.mov(ds, ax).expect("asm");
    a.mov(dx, 0x3f8u32).expect("asm");
    let mut lp = a.create_label();
    a.set_label(&mut lp).expect("asm");
    a.mov(al, byte_ptr(si + 0x100)).expect("asm");
    a.test(al, al).expect("asm");
    a.jz(lbl).expect("asm");
    a.out(dx, al).expect("asm");
    a.inc(si).expect("asm");
    a.jmp(lp).expect("asm");
    a.set_label(&mut lbl).expect("asm");
    a.mov(al, 6u32).expect("asm");
    a.mov(dx, 0xcf9u32).expect("asm");
    a.out(dx, al).expect("asm");
    a.hlt().expect("asm");
    let mut code = a.assemble(ROM_BASE).expect("assemble");
    code.resize(0x100, 0x90);
    code.extend_from_slice(msg);
    code.push(0);
    rom_from_real_mode(&code)
}
