//! System instructions in 64-bit mode, with expected values from the SDM (they depend on the
//! machine state, not on arithmetic the host could replay): CPUID feature bits the other
//! ROMs rely on, RDTSC, RDMSR/WRMSR round trips (STAR LSTAR CSTAR FMASK FS/GS base, kernel
//! GS base) with #GP for a non-canonical LSTAR and an unknown MSR, FS/GS-relative
//! addressing and SWAPGS, SGDT/SIDT/LGDT, LTR/STR/SLDT, SMSW, MOV from CR0/CR4, LAR LSL VERR
//! VERW, OUTS/INS, RDTSCP, LMSW/CLTS, debug registers, INT1, STI/CLI, and the instructions
//! that only have to run (fences, PAUSE, prefetch, CLFLUSH, WBINVD, ENDBR64).

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{self, sel};
use crate::asm::*;

const EXPECTED: &str = "\
system instructions (values from the SDM and the standard GDT)
cpuid.0: max leaf >= 1 = 0x1 ok
cpuid.1:edx has pse tsc msr pae cx8 cmov = 0x1 ok
cpuid.80000001:edx has syscall nx 1g-pages lm = 0x1 ok
rdtsc counts up = 0x1 ok
star round trip = 0x23001b0008000000 ok
lstar round trip = 0xffff800000001000 ok
cstar round trip = 0x12345678 ok
fmask round trip = 0x47700 ok
kernel_gs_base round trip = 0x4280 ok
fs:[0x10] with fs.base = 0x4100 = 0x1111 ok
gs:[0x10] with gs.base = 0x4200 = 0x2222 ok
gs:[0x10] after swapgs = 0x3333 ok
gs.base read back after swapgs = 0x4280 ok
wrmsr non-canonical lstar: vector = 0xd ok
wrmsr non-canonical lstar: error code = 0x0 ok
wrmsr non-canonical lstar: saved rip is the faulting instruction ok
rdmsr unknown msr: vector = 0xd ok
rdmsr unknown msr: error code = 0x0 ok
rdmsr unknown msr: saved rip is the faulting instruction ok
sgdt limit = 0x7f ok
sgdt base = 0x1000 ok
sidt limit = 0xfff ok
sidt base = 0x2000 ok
lgdt + sgdt: new limit = 0x37 ok
lgdt + sgdt: new base = 0x4400 ok
str after ltr = 0x50 ok
tss descriptor busy after ltr = 0xb ok
sldt = 0x0 ok
smsw = 0x11 ok
cr0 = 0xe0000011 ok
cr4 = 0x20 ok
efer = 0x501 ok
lar code32 = 0xc09b00 ok
lar code64 = 0xa09b00 ok
lsl data = 0xffffffff ok
lsl code16 = 0xffff ok
lar null selector: zf = 0x0 ok
verr code32: zf = 0x1 ok
verw code32: zf = 0x0 ok
verw data: zf = 0x1 ok
verw read-only data: zf = 0x0 ok
rep outsb wrote this line
insb from the line status register = 0x60 ok
rdtscp: ecx = tsc_aux = 0x77 ok
lmsw sets cr0.ts = 0x8 ok
clts clears it = 0x0 ok
dr0 written and read back = 0x123456 ok
dr7 at reset = 0x400 ok
int1 (icebp): vector = 0x1 ok
int1 (icebp): no error code ok
int1 (icebp): saved rip is the next instruction ok
sti: rflags.if = 0x1 ok
cli: rflags.if = 0x0 ok
fences, pause, prefetch, clflush, wbinvd, endbr64 executed = 0x1 ok
cr8 written and read back = 0x5 ok
mov cr4 with reserved bit 31: vector = 0xd ok
mov cr4 with reserved bit 31: error code = 0x0 ok
clearing cr4.pae in long mode: vector = 0xd ok
clearing cr4.pae in long mode: error code = 0x0 ok
clearing cr0.pg in 64-bit mode: vector = 0xd ok
clearing cr0.pg in 64-bit mode: error code = 0x0 ok
setting cr0.nw without cr0.cd: vector = 0xd ok
setting cr0.nw without cr0.cd: error code = 0x0 ok
wrmsr efer clearing lme while paging: vector = 0xd ok
wrmsr efer clearing lme while paging: error code = 0x0 ok
all checks passed
";

/// A piece of code to run.
type Emit = fn(&mut Asm) -> R;

/// MSR numbers (SDM Vol. 4).
mod msr {
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const FMASK: u32 = 0xc000_0084;
    pub const EFER: u32 = 0xc000_0080;
}

/// WRMSR of the 64-bit value `v` to `index`.
fn wrmsr(a: &mut Asm, index: u32, v: u64) -> R {
    a.mov(ecx, index)?;
    a.mov(eax, v as u32)?;
    a.mov(edx, (v >> 32) as u32)?;
    a.wrmsr()
}

/// RAX = RDMSR(index).
fn rdmsr(a: &mut Asm, index: u32) -> R {
    a.mov(ecx, index)?;
    a.rdmsr()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)
}

/// EAX = ZF.
fn zf(a: &mut Asm) -> R {
    a.setz(al)?;
    a.movzx(eax, al)
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("families/system");
    boot::standard_long(&mut rom, &boot::long_mode_tables(), "main", false);
    faults::install64(&mut rom);
    rom.ram(RamInit::Bytes(
        layout::TSS_ADDR,
        tables::tss64(layout::STACK_TOP, &[]),
    ));
    rom.code64("main", |a| {
        print(
            a,
            "system instructions (values from the SDM and the standard GDT)\n",
        )?;
        // CPUID.
        a.xor(eax, eax)?;
        a.cpuid()?;
        a.cmp(eax, 1)?;
        a.setae(al)?;
        a.movzx(eax, al)?;
        check(a, "cpuid.0: max leaf >= 1", 1)?;
        let want1: u32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 15);
        a.mov(eax, 1)?;
        a.cpuid()?;
        a.and(edx, want1)?;
        a.cmp(edx, want1)?;
        zf(a)?;
        check(a, "cpuid.1:edx has pse tsc msr pae cx8 cmov", 1)?;
        let want_ext: u32 = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 29);
        a.mov(eax, 0x8000_0001u32)?;
        a.cpuid()?;
        a.and(edx, want_ext)?;
        a.cmp(edx, want_ext)?;
        zf(a)?;
        check(a, "cpuid.80000001:edx has syscall nx 1g-pages lm", 1)?;
        // RDTSC twice: the second value is larger.
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(rbx, rax)?;
        a.mov(ecx, 100)?;
        let mut spin = a.create_label();
        a.set_label(&mut spin)?;
        a.dec(ecx)?;
        a.jnz(spin)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.cmp(rax, rbx)?;
        a.seta(al)?;
        a.movzx(eax, al)?;
        check(a, "rdtsc counts up", 1)?;
        // MSR round trips.
        for (name, index, v) in [
            ("star", msr::STAR, 0x2300_1b00_0800_0000u64),
            ("lstar", msr::LSTAR, 0xffff_8000_0000_1000),
            ("cstar", msr::CSTAR, 0x1234_5678),
            ("fmask", msr::FMASK, 0x4_7700),
            ("kernel_gs_base", msr::KERNEL_GS_BASE, 0x4280),
        ] {
            wrmsr(a, index, v)?;
            a.xor(eax, eax)?;
            rdmsr(a, index)?;
            check(a, &format!("{name} round trip"), v)?;
        }
        // FS and GS bases from the MSRs; SWAPGS exchanges GS.base with KERNEL_GS_BASE.
        a.mov(word_ptr(0x4110u64), 0x1111)?;
        a.mov(word_ptr(0x4210u64), 0x2222)?;
        a.mov(word_ptr(0x4290u64), 0x3333)?;
        wrmsr(a, msr::FS_BASE, 0x4100)?;
        wrmsr(a, msr::GS_BASE, 0x4200)?;
        a.movzx(eax, word_ptr(0x10u64).fs())?;
        check(a, "fs:[0x10] with fs.base = 0x4100", 0x1111)?;
        a.movzx(eax, word_ptr(0x10u64).gs())?;
        check(a, "gs:[0x10] with gs.base = 0x4200", 0x2222)?;
        a.swapgs()?;
        a.movzx(eax, word_ptr(0x10u64).gs())?;
        check(a, "gs:[0x10] after swapgs", 0x3333)?;
        rdmsr(a, msr::GS_BASE)?;
        check(a, "gs.base read back after swapgs", 0x4280)?;
        a.swapgs()?;
        // WRMSR of a non-canonical address and RDMSR of an MSR that does not exist: #GP(0).
        faults::expect_fault(a, |a| {
            a.mov(ecx, msr::LSTAR)?;
            a.xor(eax, eax)?;
            a.mov(edx, 0x0000_8000)?;
            a.wrmsr()
        })?;
        // The fault is on WRMSR, the body's last instruction.
        faults::report(
            a,
            "wrmsr non-canonical lstar",
            vector::GP,
            Some(0),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "wrmsr non-canonical lstar", 2)?;
        faults::expect_fault(a, |a| {
            a.mov(ecx, 0x4000_1234u32)?;
            a.rdmsr()
        })?;
        faults::report(
            a,
            "rdmsr unknown msr",
            vector::GP,
            Some(0),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "rdmsr unknown msr", 2)?;
        // Descriptor-table registers.
        let area = 0x4300u64;
        a.sgdt(ptr(area))?;
        a.movzx(eax, word_ptr(area))?;
        check(a, "sgdt limit", u64::from(sel::GDT_END) - 1)?;
        a.mov(rax, qword_ptr(area + 2))?;
        check(a, "sgdt base", layout::GDT_ADDR)?;
        a.sidt(ptr(area))?;
        a.movzx(eax, word_ptr(area))?;
        check(a, "sidt limit", 0xfff)?;
        a.mov(rax, qword_ptr(area + 2))?;
        check(a, "sidt base", layout::IDT_ADDR)?;
        // A copy of the first 7 descriptors at 0x4400, loaded and read back, then the
        // original again.
        a.mov(esi, layout::GDT_ADDR as u32)?;
        a.mov(edi, 0x4400)?;
        a.mov(ecx, 0x38)?;
        a.rep().movsb()?;
        a.mov(word_ptr(0x4320u64), 0x37)?;
        a.mov(qword_ptr(0x4322u64), 0x4400)?;
        a.lgdt(ptr(0x4320u64))?;
        a.sgdt(ptr(area))?;
        a.movzx(eax, word_ptr(area))?;
        check(a, "lgdt + sgdt: new limit", 0x37)?;
        a.mov(rax, qword_ptr(area + 2))?;
        check(a, "lgdt + sgdt: new base", 0x4400)?;
        let g = a.sym("ram_gdtr");
        a.lgdt(ptr(g))?;
        // Task register and LDTR.
        a.mov(ax, u32::from(sel::TSS))?;
        a.ltr(ax)?;
        a.xor(eax, eax)?;
        a.str(ax)?;
        check(a, "str after ltr", u64::from(sel::TSS))?;
        a.movzx(eax, byte_ptr(layout::GDT_ADDR + u64::from(sel::TSS) + 5))?;
        a.and(eax, 0xf)?;
        check(a, "tss descriptor busy after ltr", 0xb)?;
        a.mov(eax, 0xffff)?;
        a.sldt(ax)?;
        a.movzx(eax, ax)?;
        check(a, "sldt", 0)?;
        // Control registers.
        a.xor(eax, eax)?;
        a.smsw(ax)?;
        check(a, "smsw", 0x11)?;
        a.mov(rax, cr0)?;
        check(a, "cr0", 0xe000_0011)?;
        a.mov(rax, cr4)?;
        check(a, "cr4", 0x20)?;
        wrmsr(a, msr::EFER, 0x501)?;
        rdmsr(a, msr::EFER)?;
        check(a, "efer", 0x501)?;
        // LAR/LSL/VERR/VERW on standard descriptors.
        for (name, s, lsl, v) in [
            ("lar code32", sel::CODE32, false, 0x00c0_9b00u64),
            ("lar code64", sel::CODE64, false, 0x00a0_9b00),
            ("lsl data", sel::DATA, true, 0xffff_ffff),
            ("lsl code16", sel::CODE16, true, 0xffff),
        ] {
            a.mov(ecx, u32::from(s))?;
            a.xor(eax, eax)?;
            if lsl {
                a.lsl(eax, ecx)?;
            } else {
                a.lar(eax, ecx)?;
            }
            check(a, name, v)?;
        }
        a.xor(ecx, ecx)?;
        a.lar(eax, ecx)?;
        zf(a)?;
        check(a, "lar null selector: zf", 0)?;
        for (name, s, write, v) in [
            ("verr code32: zf", sel::CODE32, false, 1u64),
            ("verw code32: zf", sel::CODE32, true, 0),
            ("verw data: zf", sel::DATA, true, 1),
            ("verw read-only data: zf", sel::DATA_RO, true, 0),
        ] {
            a.mov(ecx, u32::from(s))?;
            if write {
                a.verw(cx)?;
            } else {
                a.verr(cx)?;
            }
            zf(a)?;
            check(a, name, v)?;
        }
        // String I/O: OUTSB to COM1's data register, INSB from its line status register.
        let text = b"rep outsb wrote this line\r\n";
        let mut msg = a.create_label();
        let mut after = a.create_label();
        a.lea(rsi, ptr(msg))?;
        a.mov(ecx, text.len() as u32)?;
        a.mov(dx, u32::from(layout::COM1))?;
        a.rep().outsb()?;
        a.jmp(after)?;
        a.set_label(&mut msg)?;
        a.db(text)?;
        a.set_label(&mut after)?;
        a.mov(dx, u32::from(layout::COM1_LSR))?;
        a.mov(edi, 0x4500)?;
        a.insb()?;
        a.movzx(eax, byte_ptr(0x4500u64))?;
        check(a, "insb from the line status register", 0x60)?;
        wrmsr(a, 0xc000_0103, 0x77)?;
        a.xor(ecx, ecx)?;
        a.rdtscp()?;
        a.mov(eax, ecx)?;
        check(a, "rdtscp: ecx = tsc_aux", 0x77)?;
        // CR0.TS through LMSW (the low four CR0 bits) and CLTS.
        a.smsw(ax)?;
        a.or(ax, 8)?;
        a.lmsw(ax)?;
        a.mov(rax, cr0)?;
        a.and(eax, 8)?;
        check(a, "lmsw sets cr0.ts", 8)?;
        a.clts()?;
        a.mov(rax, cr0)?;
        a.and(eax, 8)?;
        check(a, "clts clears it", 0)?;
        a.mov(rax, 0x12_3456u64)?;
        a.mov(dr0, rax)?;
        a.xor(eax, eax)?;
        a.mov(rax, dr0)?;
        check(a, "dr0 written and read back", 0x12_3456)?;
        a.mov(rax, dr7)?;
        check(a, "dr7 at reset", 0x400)?;
        faults::expect_fault(a, |a| a.int1())?;
        faults::report(a, "int1 (icebp)", vector::DB, None, SavedRip::Next)?;
        a.sti()?;
        a.pushfq()?;
        a.pop(rax)?;
        a.shr(eax, 9)?;
        a.and(eax, 1)?;
        check(a, "sti: rflags.if", 1)?;
        a.cli()?;
        a.pushfq()?;
        a.pop(rax)?;
        a.shr(eax, 9)?;
        a.and(eax, 1)?;
        check(a, "cli: rflags.if", 0)?;
        a.lfence()?;
        a.sfence()?;
        a.mfence()?;
        a.pause()?;
        a.prefetcht0(byte_ptr(rsp))?;
        a.clflush(byte_ptr(rsp))?;
        a.wbinvd()?;
        a.endbr64()?;
        a.mov(eax, 1)?;
        check(
            a,
            "fences, pause, prefetch, clflush, wbinvd, endbr64 executed",
            1,
        )?;
        a.mov(eax, 5)?;
        a.mov(cr8, rax)?;
        a.xor(eax, eax)?;
        a.mov(rax, cr8)?;
        check(a, "cr8 written and read back", 5)?;
        a.xor(eax, eax)?;
        a.mov(cr8, rax)?;
        // Control-register writes the CPU refuses with #GP(0).
        let bad: [(&str, Emit); 5] = [
            ("mov cr4 with reserved bit 31", |a| {
                a.mov(rax, cr4)?;
                a.bts(eax, 31)?;
                a.mov(cr4, rax)
            }),
            ("clearing cr4.pae in long mode", |a| {
                a.mov(rax, cr4)?;
                a.btr(eax, 5)?;
                a.mov(cr4, rax)
            }),
            ("clearing cr0.pg in 64-bit mode", |a| {
                a.mov(rax, cr0)?;
                a.btr(eax, 31)?;
                a.mov(cr0, rax)
            }),
            ("setting cr0.nw without cr0.cd", |a| {
                a.mov(rax, cr0)?;
                a.btr(eax, 30)?;
                a.bts(eax, 29)?;
                a.mov(cr0, rax)
            }),
            ("wrmsr efer clearing lme while paging", |a| {
                a.mov(ecx, msr::EFER)?;
                a.rdmsr()?;
                a.btr(eax, 8)?;
                a.wrmsr()
            }),
        ];
        for (what, body) in bad {
            faults::expect_fault(a, body)?;
            faults::report(a, what, vector::GP, Some(0), SavedRip::Unchecked)?;
        }
        exit(a)
    });
    rom.build(EXPECTED)
}
