//! The built-in demo guest (`vx` with no arguments): it narrates on COM1 the road from the
//! reset vector to 64-bit mode, sieves the primes below 200 in long mode, prints them, and
//! powers off through the reset control register at port 0xCF9.

use crate::TestRom;
use crate::asm::boot;
use crate::asm::layout::{RESET_CF9, TEST_PAGES};
use crate::asm::*;

/// Sieve size: the primes below this are printed.
const LIMIT: u32 = 200;

const EXPECTED: &str = "\
vx demo: from the reset vector to 64-bit mode
real mode: the CPU starts at F000:FFF0 with 16-bit code and 1 MiB of address space
protected mode: CR0.PE is set and segments now come from the GDT (flat 4 GiB, 32-bit code)
paging: CR3 points at 4-level page tables identity-mapping the first GiB with 2 MiB pages
long mode: EFER.LME plus CR0.PG, and a far jump into a 64-bit code segment
sieve of Eratosthenes in 64-bit mode, primes below 200:
2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71
73 79 83 89 97 101 103 107 109 113 127 131 137 139 149 151 157 163 167 173
179 181 191 193 197 199
46 primes; powering off through port 0xCF9
";

/// Build the demo ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("demo");
    let pt = boot::long_mode_tables();
    for r in pt.records() {
        rom.ram(r);
    }
    let root = pt.cr3();

    rom.code16("real", |a| {
        boot::real_start(a)?;
        print(a, "vx demo: from the reset vector to 64-bit mode\n")?;
        print(
            a,
            "real mode: the CPU starts at F000:FFF0 with 16-bit code and 1 MiB of address space\n",
        )?;
        boot::real_to_prot32(a, "prot32")
    });

    rom.code32("prot32", move |a| {
        boot::prot32_setup(a)?;
        print(a, "protected mode: CR0.PE is set and segments now come from the GDT (flat 4 GiB, 32-bit code)\n")?;
        boot::prot32_to_long(a, root, "long64")
    });

    rom.code64("long64", |a| {
        boot::long_setup(a)?;
        print(a, "paging: CR3 points at 4-level page tables identity-mapping the first GiB with 2 MiB pages\n")?;
        print(a, "long mode: EFER.LME plus CR0.PG, and a far jump into a 64-bit code segment\n")?;
        print(a, "sieve of Eratosthenes in 64-bit mode, primes below 200:\n")?;
        let sieve = TEST_PAGES as i32;
        // sieve[n] = 1 for every candidate n >= 2.
        a.mov(rdi, TEST_PAGES)?;
        a.mov(ecx, LIMIT)?;
        a.mov(al, 1)?;
        a.rep().stosb()?;
        a.mov(byte_ptr(rdi - LIMIT as i32), 0)?;
        a.mov(byte_ptr(rdi - LIMIT as i32 + 1), 0)?;
        // For each prime p with p*p < LIMIT, strike p*p, p*p + p, ...
        let (mut outer, mut inner, mut next, mut show) =
            (a.create_label(), a.create_label(), a.create_label(), a.create_label());
        a.mov(ebx, 2)?;
        a.set_label(&mut outer)?;
        a.mov(eax, ebx)?;
        a.imul_2(eax, ebx)?;
        a.cmp(eax, LIMIT)?;
        a.jae(show)?;
        a.cmp(byte_ptr(rbx + sieve), 0)?;
        a.je(next)?;
        a.set_label(&mut inner)?;
        a.mov(byte_ptr(rax + sieve), 0)?;
        a.add(eax, ebx)?;
        a.cmp(eax, LIMIT)?;
        a.jb(inner)?;
        a.set_label(&mut next)?;
        a.inc(ebx)?;
        a.jmp(outer)?;
        // Print them, twenty to a line; R12 counts.
        a.set_label(&mut show)?;
        let (mut lp, mut skip, mut sep, mut printed) =
            (a.create_label(), a.create_label(), a.create_label(), a.create_label());
        a.xor(ebx, ebx)?;
        a.xor(r12d, r12d)?;
        a.set_label(&mut lp)?;
        a.cmp(byte_ptr(rbx + sieve), 0)?;
        a.je(skip)?;
        a.test(r12d, r12d)?;
        a.jz(printed)?;
        a.mov(eax, r12d)?;
        a.xor(edx, edx)?;
        a.mov(ecx, 20)?;
        a.div(ecx)?;
        a.test(edx, edx)?;
        a.jnz(sep)?;
        print(a, "\n")?;
        a.jmp(printed)?;
        a.set_label(&mut sep)?;
        print(a, " ")?;
        a.set_label(&mut printed)?;
        a.mov(eax, ebx)?;
        dec(a)?;
        a.inc(r12d)?;
        a.set_label(&mut skip)?;
        a.inc(ebx)?;
        a.cmp(ebx, LIMIT)?;
        a.jb(lp)?;
        print(a, "\n")?;
        a.mov(eax, r12d)?;
        dec(a)?;
        print(a, " primes; powering off through port 0xCF9\n")?;
        let mut halt = a.create_label();
        a.mov(dx, u32::from(RESET_CF9))?;
        a.mov(al, 6)?;
        a.out(dx, al)?;
        a.set_label(&mut halt)?;
        a.hlt()?;
        a.jmp(halt)
    });

    rom.build(EXPECTED)
}
