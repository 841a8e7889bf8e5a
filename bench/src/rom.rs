//! The compute-bound benchmark ROM (assembled with iced-x86 `code_asm`) and its host-side
//! reference model, which computes the checksum the guest must print.
//!
//! The ROM is a 64 KiB BIOS image (as for QEMU `-bios`): the reset vector at offset 0xFFF0
//! jumps to real-mode code at F000:0000, which enters protected mode, builds identity page
//! tables (2 MiB pages over the first 1 GiB), enters long mode and runs `passes` passes of a
//! fixed integer workload over a 1 MiB buffer at 1 MiB:
//!
//! 1. fill the buffer with an LCG (`imul`, `add`, `shr`, `xor`, stores);
//! 2. checksum it, calling a small mixing function per qword (`call`/`ret`, `imul`);
//! 3. a byte histogram of a quarter of the buffer (`movzx`, memory `inc`) and its fold;
//! 4. an insertion sort of 512 qwords copied out of the buffer (compare-and-branch loops);
//! 5. a strided read-modify-write over the whole buffer.
//!
//! It prints `vx-bench: checksum 0x... ok` (or `MISMATCH`) on COM1, writes 0 (or 1 on a
//! mismatch) to the debug-exit port 0xf4 (vx, QEMU `isa-debug-exit`), then writes
//! `Shutdown` to port 0x8900 (Bochs' shutdown port) and finally does `cli; hlt`.
//! Only integer ALU, mov, lea, push/pop/call/ret, jcc, loop, shifts, imul, cmp/test and
//! movzx run in the workload; no x87 or SSE.

use iced_x86::IcedError;
use iced_x86::code_asm::*;

/// Size of the ROM image.
pub const ROM_SIZE: usize = 64 * 1024;
/// Physical address of the ROM's first byte in the alias below 1 MiB.
pub const ROM_BASE: u64 = 0xf_0000;

/// ROM offset of the GDT (and the GDTR image after it).
const GDT_OFF: u64 = 0x100;
/// ROM offset of the 32-bit protected-mode code.
const PM32_OFF: u64 = 0x200;
/// ROM offset of the 64-bit code.
pub(crate) const LM64_OFF: u64 = 0x400;

/// Page tables: PML4, PDPT and one page directory, one 4 KiB page each.
const PML4: u32 = 0x1000;
const PDPT: u32 = 0x2000;
const PD: u32 = 0x3000;
/// Byte histogram: 256 qwords.
const HIST: u32 = 0x1_0000;
/// Sort scratch area: `SORT_N` qwords.
const SORT: u32 = 0x2_0000;
/// Initial stack pointer (grows down, below 640 KiB).
pub(crate) const STACK_TOP: u32 = 0x8_0000;
/// The 1 MiB work buffer starts at 1 MiB.
pub(crate) const BUF: u32 = 0x10_0000;

/// Qwords in the work buffer.
const N: u64 = 1 << 17;
/// Bytes histogrammed per pass (a quarter of the buffer, rotating).
const HIST_BYTES: u64 = 1 << 18;
/// Qwords sorted per pass.
const SORT_N: u64 = 512;
/// Read-modify-write steps per pass.
const RMW_N: u64 = 1 << 16;
/// RMW stride, in qwords (odd, so it walks the whole buffer).
const RMW_STRIDE: u64 = 4099;
/// Sort window start multiplier.
const SORT_STEP: u64 = 1031;

/// LCG multiplier and increment (Knuth's MMIX constants).
const LCG_A: u64 = 6_364_136_223_846_793_005;
const LCG_C: u64 = 1_442_695_040_888_963_407;
/// Mixing multiplier (the golden-ratio constant).
pub(crate) const MIX_M: u64 = 0x9e37_79b9_7f4a_7c15;
/// Initial checksum and LCG state.
pub(crate) const H0: u64 = 0x0123_4567_89ab_cdef;
const SEED0: u64 = 0x853c_49e6_748f_ea9b;

fn mix(h: u64, v: u64) -> u64 {
    let h = (h ^ v).wrapping_mul(MIX_M);
    h ^ (h >> 31)
}

/// What the guest computes, modelled on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The checksum the guest must print.
    pub checksum: u64,
    /// Guest instructions the pass loop retires (from the first pass test to the jump out of
    /// the loop), counted instruction by instruction from the code `long_mode` emits. Setup
    /// before it and the report after it add a small constant, plus one instruction per hex
    /// digit a-f in the printed checksum (see `hex_letters`).
    pub loop_instructions: u64,
    /// Instructions of this ROM's own setup and wrap-up outside `loop_instructions` (register
    /// set-up and the final fold), i.e. beyond the boot path, the COM1 set-up and the report
    /// that every benchmark ROM shares (see `emit_prologue` and `emit_report`). The harness
    /// checks that vx's count minus `loop_instructions`, `hex_letters` and this is the same
    /// for every ROM.
    pub fixed_instructions: u64,
}

impl Reference {
    /// Hex digits a-f in the checksum: `puthex` runs one more instruction for each.
    pub fn hex_letters(&self) -> u64 {
        (0..16)
            .filter(|k| (self.checksum >> (4 * k)) & 15 >= 10)
            .count() as u64
    }
}

/// The checksum the guest computes for `passes` passes, computed on the host by the same
/// algorithm.
pub fn reference_checksum(passes: u32) -> u64 {
    reference(passes).checksum
}

/// Run the workload on the host: checksum and the guest's instruction count.
pub fn reference(passes: u32) -> Reference {
    let n = N as usize;
    let mut buf = vec![0u64; n];
    let mut sort = vec![0u64; SORT_N as usize];
    let mut h = H0;
    let mut seed = SEED0;
    // Instruction counts per step mirror `long_mode` (the mix call is 2 + 6 instructions).
    let mut ins: u64 = 2; // the final pass test (cmp, jae)
    for p in 0..u64::from(passes) {
        ins += 2 // pass test
            + 3 + 9 * N // fill
            + 1 + 11 * N // checksum
            + 2 + 2 * 256 + 5 + 4 * HIST_BYTES + 1 + 7 * 256 // histogram
            + 4 + 6 * SORT_N + 1 // sort: window, copy
            + 2 + 11 * SORT_N // sort: fold
            + 3 + 10 * RMW_N // RMW
            + 2; // next pass
        // 1. Fill.
        let mut x = seed;
        for v in buf.iter_mut() {
            x = x.wrapping_mul(LCG_A).wrapping_add(LCG_C);
            *v = x ^ (x >> 33);
        }
        seed = x;
        // 2. Checksum with calls.
        for &v in &buf {
            h = mix(h, v);
        }
        // 3. Byte histogram of quarter (p & 3), then fold.
        let mut hist = [0u64; 256];
        let base = (p & 3) * HIST_BYTES;
        for k in base..base + HIST_BYTES {
            let b = (buf[(k / 8) as usize] >> ((k % 8) * 8)) as u8;
            hist[b as usize] += 1;
        }
        for (b, &c) in hist.iter().enumerate() {
            h = h.wrapping_add(c.wrapping_mul(b as u64 + 1));
        }
        // 4. Insertion sort of SORT_N qwords, then fold.
        let start = ((p.wrapping_mul(SORT_STEP)) & (N / 2 - 1)) as usize;
        sort.copy_from_slice(&buf[start..start + SORT_N as usize]);
        for i in 1..sort.len() {
            let key = sort[i];
            let mut j = i;
            ins += 2 + 4; // load key and j; place and loop test
            while j > 0 && sort[j - 1] > key {
                sort[j] = sort[j - 1];
                j -= 1;
                ins += 8;
            }
            ins += if j == 0 { 2 } else { 5 };
            sort[j] = key;
        }
        for &v in &sort {
            h = mix(h, v);
        }
        // 5. Strided read-modify-write.
        let mut idx = p & (N - 1);
        for i in 0..RMW_N {
            let v = (i ^ h).wrapping_add(buf[idx as usize]);
            buf[idx as usize] = v;
            h = h.wrapping_add(v);
            idx = (idx + RMW_STRIDE) & (N - 1);
        }
    }
    Reference {
        checksum: h ^ seed,
        loop_instructions: ins,
        // 7 register set-up instructions, and `xor r15, r14` before the report.
        fixed_instructions: 8,
    }
}

/// Build the benchmark ROM for `passes` passes; it embeds the expected checksum.
pub fn build(passes: u32) -> Result<Vec<u8>, IcedError> {
    let expected = reference_checksum(passes);
    image(&long_mode(passes, expected)?)
}

/// The ROM image around `lm`, 64-bit code assembled at `ROM_BASE + LM64_OFF`: reset vector,
/// real-mode and 32-bit boot code and the GDT.
pub(crate) fn image(lm: &[u8]) -> Result<Vec<u8>, IcedError> {
    let mut rom = vec![0xf4u8; ROM_SIZE];
    let put = |rom: &mut Vec<u8>, off: u64, bytes: &[u8]| {
        rom[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
    };
    let rm = real_mode()?;
    assert!(rm.len() as u64 <= GDT_OFF, "real-mode code too long");
    put(&mut rom, 0, &rm);
    put(&mut rom, GDT_OFF, &gdt());
    let pm = protected_mode()?;
    assert!(
        PM32_OFF + pm.len() as u64 <= LM64_OFF,
        "32-bit code too long"
    );
    put(&mut rom, PM32_OFF, &pm);
    assert!(LM64_OFF + lm.len() as u64 <= 0xfff0, "64-bit code too long");
    put(&mut rom, LM64_OFF, lm);
    // Reset vector at F000:FFF0: jmp far F000:0000.
    put(&mut rom, 0xfff0, &[0xea, 0x00, 0x00, 0x00, 0xf0]);
    Ok(rom)
}

/// GDT: null, 0x08 flat 32-bit code, 0x10 flat data, 0x18 64-bit code; then the GDTR image.
fn gdt() -> Vec<u8> {
    let entries: [u64; 4] = [
        0,
        0x00cf_9a00_0000_ffff,
        0x00cf_9200_0000_ffff,
        0x00af_9a00_0000_ffff,
    ];
    let mut v = Vec::new();
    for e in entries {
        v.extend_from_slice(&e.to_le_bytes());
    }
    v.extend_from_slice(&((entries.len() * 8 - 1) as u16).to_le_bytes());
    v.extend_from_slice(&((ROM_BASE + GDT_OFF) as u32).to_le_bytes());
    v
}

/// 16-bit code at F000:0000: enable A20, load the GDT, set CR0.PE, far jump to 32-bit code.
fn real_mode() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(16)?;
    a.cli()?;
    a.cld()?;
    // Fast A20 (port 0x92 bit 1); bit 0 (reset) stays clear.
    a.in_(al, 0x92)?;
    a.or(al, 2)?;
    a.and(al, 0xfe)?;
    a.out(0x92, al)?;
    a.mov(ax, 0xf000u32)?;
    a.mov(ds, ax)?;
    // o32 lgdt [GDT_OFF + 32]: the GDTR image follows the four descriptors.
    let d = (GDT_OFF + 32) as u16;
    a.db(&[0x66, 0x0f, 0x01, 0x16, d as u8, (d >> 8) as u8])?;
    a.mov(eax, cr0)?;
    a.or(eax, 1)?;
    a.mov(cr0, eax)?;
    // o32 jmp far 0x08:ROM_BASE+PM32_OFF.
    let t = ((ROM_BASE + PM32_OFF) as u32).to_le_bytes();
    a.db(&[0x66, 0xea, t[0], t[1], t[2], t[3], 0x08, 0x00])?;
    a.assemble(ROM_BASE)
}

/// 32-bit code: flat segments, identity page tables with 2 MiB pages over the first 1 GiB,
/// PAE, EFER.LME, paging, far jump to 64-bit code.
fn protected_mode() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(32)?;
    a.mov(ax, 0x10u32)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(esp, STACK_TOP)?;
    // Clear the three table pages.
    a.mov(edi, PML4)?;
    a.xor(eax, eax)?;
    a.mov(ecx, 3 * 1024u32)?;
    let mut clr = a.create_label();
    a.set_label(&mut clr)?;
    a.mov(dword_ptr(edi), eax)?;
    a.add(edi, 4)?;
    a.dec(ecx)?;
    a.jnz(clr)?;
    a.mov(dword_ptr(PML4), PDPT | 3)?;
    a.mov(dword_ptr(PDPT), PD | 3)?;
    // PD[i] = i << 21 | present | writable | page size.
    a.mov(edi, PD)?;
    a.mov(eax, 0x83u32)?;
    a.mov(ecx, 512u32)?;
    let mut pd = a.create_label();
    a.set_label(&mut pd)?;
    a.mov(dword_ptr(edi), eax)?;
    a.add(eax, 0x20_0000)?;
    a.add(edi, 8)?;
    a.loop_(pd)?;
    a.mov(eax, cr4)?;
    a.or(eax, 0x20)?; // PAE
    a.mov(cr4, eax)?;
    a.mov(eax, PML4)?;
    a.mov(cr3, eax)?;
    a.mov(ecx, 0xc000_0080u32)?; // EFER
    a.rdmsr()?;
    a.or(eax, 0x100)?; // LME
    a.wrmsr()?;
    a.mov(eax, cr0)?;
    a.or(eax, 0x8000_0000u32 as i32)?; // PG
    a.mov(cr0, eax)?;
    a.jmp_far(0x18, (ROM_BASE + LM64_OFF) as u32)?;
    a.assemble(ROM_BASE + PM32_OFF)
}

/// 64-bit code: the workload, the report on COM1 and the exit sequence.
///
/// Registers: r15 checksum, r14 LCG state, r13 pass, rdi buffer base, rbx LCG multiplier,
/// r8 LCG increment, r9 mixing multiplier.
fn long_mode(passes: u32, expected: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut mix_fn = a.create_label();
    emit_prologue(&mut a)?;

    a.mov(r15, H0)?;
    a.mov(r14, SEED0)?;
    a.xor(r13d, r13d)?;
    a.mov(edi, BUF)?;
    a.mov(rbx, LCG_A)?;
    a.mov(r8, LCG_C)?;
    a.mov(r9, MIX_M)?;

    let mut pass = a.create_label();
    let mut done = a.create_label();
    a.set_label(&mut pass)?;
    a.cmp(r13d, passes)?;
    a.jae(done)?;
    // 1. Fill: x = x * A + C; buf[i] = x ^ (x >> 33).
    a.mov(rax, r14)?;
    a.xor(ecx, ecx)?;
    let mut fill = a.create_label();
    a.set_label(&mut fill)?;
    a.imul_2(rax, rbx)?;
    a.add(rax, r8)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 33)?;
    a.xor(rdx, rax)?;
    a.mov(qword_ptr(rdi + rcx * 8), rdx)?;
    a.inc(rcx)?;
    a.cmp(rcx, N as i32)?;
    a.jne(fill)?;
    a.mov(r14, rax)?;

    // 2. Checksum: h = mix(h, buf[i]) through a call.
    a.xor(ecx, ecx)?;
    let mut sum = a.create_label();
    a.set_label(&mut sum)?;
    a.mov(rsi, qword_ptr(rdi + rcx * 8))?;
    a.call(mix_fn)?;
    a.inc(rcx)?;
    a.cmp(rcx, N as i32)?;
    a.jb(sum)?;

    // 3. Histogram: clear, count bytes of quarter (pass & 3), fold.
    a.xor(eax, eax)?;
    a.mov(ecx, 256u32)?;
    let mut hclr = a.create_label();
    a.set_label(&mut hclr)?;
    a.mov(qword_ptr(rcx * 8 + (HIST as i32 - 8)), rax)?;
    a.loop_(hclr)?;
    a.mov(esi, r13d)?;
    a.and(esi, 3)?;
    a.shl(rsi, 18)?;
    a.add(rsi, rdi)?;
    a.mov(ecx, HIST_BYTES as u32)?;
    let mut hist = a.create_label();
    a.set_label(&mut hist)?;
    a.movzx(eax, byte_ptr(rsi))?;
    a.inc(qword_ptr(rax * 8 + HIST as i32))?;
    a.inc(rsi)?;
    a.loop_(hist)?;
    a.xor(ecx, ecx)?;
    let mut hfold = a.create_label();
    a.set_label(&mut hfold)?;
    a.mov(rax, qword_ptr(rcx * 8 + HIST as i32))?;
    a.lea(rdx, qword_ptr(rcx + 1))?;
    a.imul_2(rax, rdx)?;
    a.add(r15, rax)?;
    a.inc(rcx)?;
    a.cmp(rcx, 256)?;
    a.jne(hfold)?;

    // 4. Insertion sort of SORT_N qwords starting at (pass * SORT_STEP) & (N/2 - 1).
    a.imul_3(r10, r13, SORT_STEP as i32)?;
    a.and(r10, (N / 2 - 1) as i32)?;
    a.mov(esi, SORT)?;
    a.xor(ecx, ecx)?;
    let mut copy = a.create_label();
    a.set_label(&mut copy)?;
    a.mov(rax, qword_ptr(rdi + r10 * 8))?;
    a.mov(qword_ptr(rsi + rcx * 8), rax)?;
    a.inc(r10)?;
    a.inc(rcx)?;
    a.cmp(rcx, SORT_N as i32)?;
    a.jne(copy)?;
    a.mov(ecx, 1u32)?;
    let mut outer = a.create_label();
    let mut inner = a.create_label();
    let mut place = a.create_label();
    a.set_label(&mut outer)?;
    a.mov(rax, qword_ptr(rsi + rcx * 8))?;
    a.mov(rdx, rcx)?;
    a.set_label(&mut inner)?;
    a.test(rdx, rdx)?;
    a.jz(place)?;
    a.mov(r11, qword_ptr(rsi + rdx * 8 - 8))?;
    a.cmp(r11, rax)?;
    a.jbe(place)?;
    a.mov(qword_ptr(rsi + rdx * 8), r11)?;
    a.dec(rdx)?;
    a.jmp(inner)?;
    a.set_label(&mut place)?;
    a.mov(qword_ptr(rsi + rdx * 8), rax)?;
    a.inc(rcx)?;
    a.cmp(rcx, SORT_N as i32)?;
    a.jne(outer)?;
    // Fold the sorted run: h = mix(h, sort[i]).
    a.mov(r12, rsi)?;
    a.xor(ecx, ecx)?;
    let mut sfold = a.create_label();
    a.set_label(&mut sfold)?;
    a.mov(rsi, qword_ptr(r12 + rcx * 8))?;
    a.call(mix_fn)?;
    a.inc(rcx)?;
    a.cmp(rcx, SORT_N as i32)?;
    a.jne(sfold)?;

    // 5. Strided RMW: v = (i ^ h) + buf[idx]; buf[idx] = v; h += v; idx += stride (mod N).
    a.mov(r10, r13)?;
    a.and(r10, (N - 1) as i32)?;
    a.xor(ecx, ecx)?;
    let mut rmw = a.create_label();
    a.set_label(&mut rmw)?;
    a.mov(rax, rcx)?;
    a.xor(rax, r15)?;
    a.add(rax, qword_ptr(rdi + r10 * 8))?;
    a.mov(qword_ptr(rdi + r10 * 8), rax)?;
    a.add(r15, rax)?;
    a.add(r10, RMW_STRIDE as i32)?;
    a.and(r10, (N - 1) as i32)?;
    a.inc(rcx)?;
    a.cmp(rcx, RMW_N as i32)?;
    a.jne(rmw)?;

    a.inc(r13d)?;
    a.jmp(pass)?;

    // mix: r15 = (r15 ^ rsi) * r9; r15 ^= r15 >> 31. Clobbers rdx.
    a.set_label(&mut mix_fn)?;
    a.xor(r15, rsi)?;
    a.imul_2(r15, r9)?;
    a.mov(rdx, r15)?;
    a.shr(rdx, 31)?;
    a.xor(r15, rdx)?;
    a.ret()?;

    a.set_label(&mut done)?;
    a.xor(r15, r14)?;
    emit_report(&mut a, expected)?;
    a.assemble(ROM_BASE + LM64_OFF)
}

/// Start of every ROM's 64-bit code: flat data segments, the stack, COM1 at 8N1 (12
/// instructions).
pub(crate) fn emit_prologue(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(ax, 0x10u32)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(esp, STACK_TOP)?;
    // COM1: 8N1, no interrupts, DTR|RTS.
    a.mov(dx, 0x3fbu32)?;
    a.mov(al, 3u32)?;
    a.out(dx, al)?;
    a.mov(dx, 0x3f9u32)?;
    a.xor(eax, eax)?;
    a.out(dx, al)?;
    a.mov(dx, 0x3fcu32)?;
    a.mov(al, 3u32)?;
    a.out(dx, al)?;
    Ok(())
}

/// End of every ROM's 64-bit code: print the result in r15 on COM1, compare it with
/// `expected`, exit through the debug-exit port (0 ok, 1 mismatch), Bochs' shutdown port
/// and `cli; hlt`; then the print helpers and messages.
pub(crate) fn emit_report(a: &mut CodeAssembler, expected: u64) -> Result<(), IcedError> {
    let mut putc = a.create_label();
    let mut puts = a.create_label();
    let mut puthex = a.create_label();
    let mut msg_head = a.create_label();
    let mut msg_ok = a.create_label();
    let mut msg_bad = a.create_label();
    let mut msg_exp = a.create_label();

    // Report: "vx-bench: checksum 0x<h> ok" or "... MISMATCH expected 0x<e>".
    a.lea(rsi, ptr(msg_head))?;
    a.call(puts)?;
    a.mov(rax, r15)?;
    a.call(puthex)?;
    a.mov(rax, expected)?;
    a.cmp(r15, rax)?;
    let mut bad = a.create_label();
    let mut exit = a.create_label();
    a.jne(bad)?;
    a.lea(rsi, ptr(msg_ok))?;
    a.call(puts)?;
    a.xor(ebx, ebx)?;
    a.jmp(exit)?;
    a.set_label(&mut bad)?;
    a.lea(rsi, ptr(msg_bad))?;
    a.call(puts)?;
    a.mov(rax, expected)?;
    a.call(puthex)?;
    a.lea(rsi, ptr(msg_exp))?;
    a.call(puts)?;
    a.mov(ebx, 1u32)?;
    // Exit: debug-exit port (vx, QEMU), then Bochs' shutdown port, then halt for good.
    a.set_label(&mut exit)?;
    a.mov(eax, ebx)?;
    a.out(0xf4, al)?;
    a.mov(dx, 0x8900u32)?;
    for &c in b"Shutdown" {
        a.mov(al, u32::from(c))?;
        a.out(dx, al)?;
    }
    let mut halt = a.create_label();
    a.set_label(&mut halt)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(halt)?;

    // putc: write al to COM1 once the transmitter is empty (bounded wait). Clobbers edx, r11d.
    a.set_label(&mut putc)?;
    a.push(rax)?;
    a.mov(dx, 0x3fdu32)?;
    a.mov(r11d, 100_000u32)?;
    let mut poll = a.create_label();
    let mut ready = a.create_label();
    a.set_label(&mut poll)?;
    a.in_(al, dx)?;
    a.test(al, 0x20)?;
    a.jnz(ready)?;
    a.dec(r11d)?;
    a.jnz(poll)?;
    a.set_label(&mut ready)?;
    a.pop(rax)?;
    a.mov(dx, 0x3f8u32)?;
    a.out(dx, al)?;
    a.ret()?;

    // puts: print the NUL-terminated string at rsi.
    let mut puts_end = a.create_label();
    a.set_label(&mut puts)?;
    a.mov(al, byte_ptr(rsi))?;
    a.test(al, al)?;
    a.jz(puts_end)?;
    a.call(putc)?;
    a.inc(rsi)?;
    a.jmp(puts)?;
    a.set_label(&mut puts_end)?;
    a.ret()?;

    // puthex: print rax as 16 hex digits.
    a.set_label(&mut puthex)?;
    a.mov(r10, rax)?;
    a.mov(ecx, 16u32)?;
    let mut hex_loop = a.create_label();
    let mut digit = a.create_label();
    a.set_label(&mut hex_loop)?;
    a.rol(r10, 4)?;
    a.mov(eax, r10d)?;
    a.and(eax, 15)?;
    a.add(eax, i32::from(b'0'))?;
    a.cmp(eax, i32::from(b'9'))?;
    a.jbe(digit)?;
    a.add(eax, i32::from(b'a' - b'9' - 1))?;
    a.set_label(&mut digit)?;
    a.push(rcx)?;
    a.call(putc)?;
    a.pop(rcx)?;
    a.loop_(hex_loop)?;
    a.ret()?;

    a.set_label(&mut msg_head)?;
    a.db(b"vx-bench: checksum 0x\0")?;
    a.set_label(&mut msg_ok)?;
    a.db(b" ok\r\n\0")?;
    a.set_label(&mut msg_bad)?;
    a.db(b" MISMATCH expected 0x\0")?;
    a.set_label(&mut msg_exp)?;
    a.db(b"\r\n\0")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rom_layout() {
        let rom = build(1).expect("assemble");
        assert_eq!(rom.len(), ROM_SIZE);
        assert_eq!(&rom[0xfff0..0xfff5], &[0xea, 0x00, 0x00, 0x00, 0xf0]);
    }

    #[test]
    fn test_reference_depends_on_passes() {
        assert_ne!(reference_checksum(1), reference_checksum(2));
    }
}
