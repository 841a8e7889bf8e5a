//! SSE/SSE2 ground truth from silicon: every legacy SSE/SSE2 encoding in `host_sse/table.rs`
//! runs natively on the host CPU and on the interpreter from the same XMM registers, MXCSR
//! (all four rounding modes, FTZ and DAZ on and off), general registers, RFLAGS and memory;
//! XMM0-XMM7, MXCSR, RFLAGS' status flags, RAX/RCX/RDX and the memory operand area must agree
//! bit for bit (RCP/RSQRT within the SDM's 1.5 * 2^-12 relative error). Plus
//! interpreter-only checks of the faults (SDM Vol. 2 "SIMD Floating-Point Exceptions" and
//! "Exceptions" of each instruction; Vol. 3A §2.5 for CR0/CR4).
//!
//! Seed: `VX_HOST_CHECK_SEED` (default fixed).

#[allow(dead_code)]
#[path = "host_check/harness.rs"]
mod harness;
#[path = "host_sse/table.rs"]
mod table;

use cpu::state::cr;
use harness::{BASE_OFF, CODE, Case, DATA, Guest, GuestResult, HANDLERS, Input, Rng};
use iced_x86::code_asm::*;
use memmap2::Mmap;
use table::{Elem, Op, RegF, RmF};

fn seed() -> u64 {
    std::env::var("VX_HOST_CHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x55e2_0005)
}

/// Bytes of memory-operand area (at `rbx` and `rdi` on both sides).
const MEM: usize = 64;

// ---- the native side -------------------------------------------------------------------------

/// What the host snippet loads and stores.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    xmm: [[u8; 16]; 8],
    mem: [u8; MEM],
    gpr: [u64; 3],
    rflags: u64,
    mxcsr: u32,
    saved_mxcsr: u32,
}

const B_MEM: i32 = 128;
const B_GPR: i32 = 192;
const B_RFLAGS: i32 = 216;
const B_MXCSR: i32 = 224;
const B_SAVED: i32 = 228;

/// An executable snippet: load the block, run the bytes, store the block back.
struct HostCode {
    map: Mmap,
}

fn xmm_reg(k: usize) -> AsmRegisterXmm {
    [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7][k]
}

impl HostCode {
    fn new(bytes: &[u8]) -> HostCode {
        let asm = || -> Result<Vec<u8>, iced_x86::IcedError> {
            let mut a = CodeAssembler::new(64)?;
            for r in [rbx, rbp, r12, r13, r14, r15] {
                a.push(r)?;
            }
            a.mov(r15, rdi)?;
            a.stmxcsr(dword_ptr(r15 + B_SAVED))?;
            a.ldmxcsr(dword_ptr(r15 + B_MXCSR))?;
            for k in 0..8 {
                a.movdqu(xmm_reg(k), xmmword_ptr(r15 + 16 * k as i32))?;
            }
            a.mov(rax, qword_ptr(r15 + B_GPR))?;
            a.mov(rcx, qword_ptr(r15 + B_GPR + 8))?;
            a.mov(rdx, qword_ptr(r15 + B_GPR + 16))?;
            a.lea(rbx, qword_ptr(r15 + B_MEM))?;
            a.lea(rdi, qword_ptr(r15 + B_MEM))?;
            a.push(qword_ptr(r15 + B_RFLAGS))?;
            a.popfq()?;
            a.db(bytes)?;
            a.pushfq()?;
            a.pop(qword_ptr(r15 + B_RFLAGS))?;
            a.mov(qword_ptr(r15 + B_GPR), rax)?;
            a.mov(qword_ptr(r15 + B_GPR + 8), rcx)?;
            a.mov(qword_ptr(r15 + B_GPR + 16), rdx)?;
            for k in 0..8 {
                a.movdqu(xmmword_ptr(r15 + 16 * k as i32), xmm_reg(k))?;
            }
            a.stmxcsr(dword_ptr(r15 + B_MXCSR))?;
            a.ldmxcsr(dword_ptr(r15 + B_SAVED))?;
            a.cld()?;
            for r in [r15, r14, r13, r12, rbp, rbx] {
                a.pop(r)?;
            }
            a.ret()?;
            a.assemble(0)
        };
        let code = asm().expect("host snippet assembles");
        HostCode {
            map: harness::executable(&code),
        }
    }

    fn run(&self, b: &Block) -> Block {
        let mut out = *b;
        out.rflags = (b.rflags & harness::FLAGS_CMP) | 0x202;
        // SAFETY: the mapping holds the snippet assembled by `new`: it saves the callee-saved
        // registers and MXCSR, loads XMM0-7, MXCSR (all exceptions masked: the generator
        // never clears a mask bit), RAX/RCX/RDX and the status flags from the block, points
        // RBX and RDI at the block's memory area (the only memory the tested bytes touch,
        // at displacements below 64 - 16), runs the bytes, stores everything back, restores
        // MXCSR, the callee-saved registers and DF, and returns.
        unsafe {
            let f: extern "C" fn(*mut Block) = std::mem::transmute(self.map.as_ptr());
            f(&mut out);
        }
        out
    }
}

// ---- encodings and inputs --------------------------------------------------------------------

/// ModRM.rm operand: a register number or [rbx+disp8].
#[derive(Clone, Copy, Debug)]
enum Rm {
    Reg(u8),
    Mem(u8),
}

fn encode(op: &Op, reg: u8, rm: Rm, imm: u8) -> Vec<u8> {
    let mut v = Vec::new();
    if op.pfx != 0 {
        v.push(op.pfx);
    }
    if op.rex_w {
        v.push(0x48);
    }
    v.extend([0x0f, op.op]);
    let reg = match op.reg {
        RegF::Ext(n) => n,
        _ => reg,
    };
    match rm {
        Rm::Reg(r) => v.push(0xc0 | reg << 3 | r),
        Rm::Mem(d) => v.extend([0x40 | reg << 3 | 3, d]),
    }
    if op.imm {
        v.push(imm);
    }
    v
}

/// A random encoding of `op`.
fn random_encoding(op: &Op, rng: &mut Rng) -> (Vec<u8>, u8) {
    let reg = match op.reg {
        RegF::Gpr => rng.below(3) as u8,
        _ => rng.below(8) as u8,
    };
    let mem = Rm::Mem(16 * rng.below(3) as u8);
    let rm = match op.rm {
        RmF::Xmm => Rm::Reg(rng.below(8) as u8),
        RmF::Mem => mem,
        RmF::XmmMem if rng.one_in(3) => mem,
        RmF::XmmMem => Rm::Reg(rng.below(8) as u8),
        RmF::GprMem if rng.one_in(3) => mem,
        RmF::GprMem => Rm::Reg(rng.below(3) as u8),
    };
    let imm = match op.name {
        // Any imm8: the legacy CMPxx forms use predicates 0-7 and ignore bits 3-7.
        n if n.starts_with("cmp") => rng.next() as u8,
        n if n.starts_with("ps") => {
            if rng.one_in(4) {
                rng.next() as u8
            } else {
                rng.below(70) as u8
            }
        }
        _ => rng.next() as u8,
    };
    (encode(op, reg, rm, imm), reg)
}

fn f32_val(rng: &mut Rng) -> u64 {
    let sign = (rng.below(2) as u32) << 31;
    let frac = rng.next() as u32 & 0x7f_ffff;
    let v = match rng.below(16) {
        0 => 0,
        1 => 0x7f80_0000,
        2 => 0x7fc0_0000 | frac,
        3 => 0x7f80_0000 | (frac & 0x3f_ffff).max(1),
        4 => frac.max(1),
        5 => (rng.below(3) as u32) << 23 | frac,
        6 => (0xfd + rng.below(2) as u32) << 23 | frac,
        7 => ((rng.below(41) as f32 - 20.0) / 4.0).to_bits() & 0x7fff_ffff,
        8 => (127 + rng.pick(&[22u32, 23, 24, 30, 31, 32, 62, 63, 64])) << 23 | frac,
        9 => 0x3f80_0000 ^ (rng.below(4) as u32),
        10 => (rng.below(0x1d) as u32 + 0x60) << 23 | frac,
        // Significands of all ones near 1, 0.5 and the smallest normal: products and sums
        // that round up to (or stay just below) the smallest normal, and carries.
        11 | 12 => {
            rng.pick(&[0u32, 1, 2, 0x7d, 0x7e, 0x7f, 0x80]) << 23
                | (0x7f_ffff - (rng.below(8) as u32) * (rng.below(2) as u32 * 0xffff + 1))
        }
        _ => (rng.below(0xff) as u32) << 23 | frac,
    };
    u64::from(v | sign)
}

fn f64_val(rng: &mut Rng) -> u64 {
    let sign = rng.below(2) << 63;
    let frac = rng.next() & 0xf_ffff_ffff_ffff;
    let v = match rng.below(16) {
        0 => 0,
        1 => 0x7ff0_0000_0000_0000,
        2 => 0x7ff8_0000_0000_0000 | frac,
        3 => 0x7ff0_0000_0000_0000 | (frac & 0x7_ffff_ffff_ffff).max(1),
        4 => frac.max(1),
        5 => rng.below(3) << 52 | frac,
        6 => (0x7fd + rng.below(2)) << 52 | frac,
        7 => ((rng.below(41) as f64 - 20.0) / 4.0).to_bits() & !(1 << 63),
        8 => (1023 + rng.pick(&[30u64, 31, 32, 52, 53, 62, 63, 64])) << 52 | frac,
        9 => 0x3ff0_0000_0000_0000 ^ rng.below(4),
        // Around binary32's range, for the narrowing conversions.
        10 => (1023 - 150 + rng.below(30)) << 52 | frac,
        11 => (1023 + 120 + rng.below(10)) << 52 | frac,
        12 | 13 => {
            rng.pick(&[0u64, 1, 2, 0x37f, 0x380, 0x3fd, 0x3fe, 0x3ff, 0x400]) << 52
                | (0xf_ffff_ffff_ffff - rng.below(8) * (rng.below(2) * 0x1_ffff_ffff + 1))
        }
        _ => rng.below(0x7ff) << 52 | frac,
    };
    v | sign
}

fn int_val(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => {
            let b = rng.pick(&[0u64, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 1]);
            b * 0x0001_0001_0001_0001
        }
        1 => rng.value(),
        2 => {
            let b = rng.pick(&[0u64, 0x7f, 0x80, 0xff, 1, 0xfe, 0x81]);
            (b * 0x0101_0101_0101_0101) ^ (rng.next() & 0x0f00_00f0_0f00_0f00)
        }
        _ => rng.next(),
    }
}

fn xmm_val(elem: Elem, rng: &mut Rng) -> u128 {
    let mut v = 0u128;
    match elem {
        Elem::F32 => {
            for k in 0..4 {
                v |= u128::from(f32_val(rng)) << (32 * k);
            }
        }
        Elem::F64 => {
            v = u128::from(f64_val(rng)) | u128::from(f64_val(rng)) << 64;
        }
        Elem::Int => v = u128::from(int_val(rng)) | u128::from(int_val(rng)) << 64,
        Elem::Count => {
            let c = if rng.one_in(5) {
                rng.value()
            } else {
                rng.below(70)
            };
            v = u128::from(c) | u128::from(rng.next()) << 64;
        }
    }
    v
}

/// A value close to `v` lane by lane (shared exponent, a few ulps apart, sometimes negated):
/// cancellation, equal compares and ties.
fn near(v: u128, elem: Elem, rng: &mut Rng) -> u128 {
    let (w, sign) = match elem {
        Elem::F32 => (32, 1u128 << 31),
        Elem::F64 => (64, 1u128 << 63),
        _ => return v ^ u128::from(rng.below(4)),
    };
    let mut r = 0u128;
    for k in 0..128 / w {
        let mut x = (v >> (k * w)) & ((1u128 << w) - 1);
        x ^= u128::from(rng.below(8));
        if rng.one_in(2) {
            x ^= sign;
        }
        r |= x << (k * w);
    }
    r
}

#[derive(Clone, Debug)]
struct Inputs {
    xmm: [u128; 8],
    mem: [u8; MEM],
    gpr: [u64; 3],
    rflags: u64,
    mxcsr: u32,
}

fn inputs(op: &Op, rng: &mut Rng) -> Inputs {
    let mut xmm = [0u128; 8];
    for x in xmm.iter_mut() {
        *x = xmm_val(op.elem, rng);
    }
    if rng.one_in(3) {
        // Second operands near the first: copy a perturbed register everywhere.
        let base = xmm[rng.below(8) as usize];
        for x in xmm.iter_mut() {
            if rng.one_in(2) {
                *x = near(base, op.elem, rng);
            }
        }
    }
    let mut mem = [0u8; MEM];
    for k in 0..MEM / 16 {
        let v = if rng.one_in(3) {
            near(xmm[rng.below(8) as usize], op.elem, rng)
        } else {
            xmm_val(op.elem, rng)
        };
        mem[16 * k..16 * k + 16].copy_from_slice(&v.to_le_bytes());
    }
    let gpr = [rng.value(), rng.value(), rng.value()];
    let rc = (rng.below(4) as u32) << 13;
    let daz = if rng.one_in(3) { 1 << 6 } else { 0 };
    let ftz = if rng.one_in(3) { 1 << 15 } else { 0 };
    let sticky = if rng.one_in(8) {
        rng.next() as u32 & 0x3f
    } else {
        0
    };
    Inputs {
        xmm,
        mem,
        gpr,
        rflags: rng.next() & 0x8d5,
        mxcsr: 0x1f80 | rc | daz | ftz | sticky,
    }
}

fn run_host(code: &HostCode, inp: &Inputs) -> Block {
    let mut b = Block {
        xmm: [[0; 16]; 8],
        mem: inp.mem,
        gpr: inp.gpr,
        rflags: inp.rflags,
        mxcsr: inp.mxcsr,
        saved_mxcsr: 0,
    };
    for (k, x) in inp.xmm.iter().enumerate() {
        b.xmm[k] = x.to_le_bytes();
    }
    code.run(&b)
}

/// The interpreter side; None with a description if it faulted.
fn run_guest(guest: &mut Guest, case: &Case, inp: &Inputs) -> Result<Block, String> {
    let mut st = guest.base;
    st.cr4 |= cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
    for (k, x) in inp.xmm.iter().enumerate() {
        st.fpu.xmm[k] = x.to_le_bytes();
    }
    st.fpu.mxcsr = inp.mxcsr;
    let mut gpr = [0u64; 16];
    gpr[..3].copy_from_slice(&inp.gpr);
    gpr[3] = BASE_OFF;
    gpr[7] = BASE_OFF;
    let mut data = vec![0u8; DATA];
    data[BASE_OFF as usize..BASE_OFF as usize + MEM].copy_from_slice(&inp.mem);
    let input = Input {
        gpr,
        rflags: inp.rflags,
        data,
    };
    let out = match guest.run_from(case, &input, &st) {
        GuestResult::Done(out) => out,
        GuestResult::Fault { vector, .. } => {
            return Err(format!("interpreter raised vector {vector}"));
        }
    };
    let fpu = guest.interp.state().fpu;
    let mut b = Block {
        xmm: [[0; 16]; 8],
        mem: [0; MEM],
        gpr: [out.gpr[0], out.gpr[1], out.gpr[2]],
        rflags: out.rflags,
        mxcsr: fpu.mxcsr,
        saved_mxcsr: 0,
    };
    b.xmm.copy_from_slice(&fpu.xmm[..8]);
    b.mem
        .copy_from_slice(&out.data[BASE_OFF as usize..BASE_OFF as usize + MEM]);
    Ok(b)
}

/// RCP/RSQRT lanes agree if equal, or both finite and within the architectural bound (relative
/// error 1.5 * 2^-12 each from the exact value, so 2^-10.4 apart), or both tiny.
fn approx_lane_ok(h: u32, g: u32) -> bool {
    if h == g {
        return true;
    }
    let (hf, gf) = (f32::from_bits(h), f32::from_bits(g));
    if !hf.is_finite() || !gf.is_finite() {
        return false;
    }
    if hf.abs() < 2.0f32.powi(-125) && gf.abs() < 2.0f32.powi(-125) {
        return hf.is_sign_negative() == gf.is_sign_negative();
    }
    ((hf - gf) / hf).abs() <= 3.0 * 2.0f32.powi(-12)
}

fn compare(op: &Op, dst: u8, host: &Block, guest: &Block) -> Vec<String> {
    let mut why = Vec::new();
    for k in 0..8 {
        let (h, g) = (host.xmm[k], guest.xmm[k]);
        if h == g {
            continue;
        }
        if op.approx && k == dst as usize {
            let lanes = if op.name.ends_with("ps") { 4 } else { 1 };
            let lane = |v: &[u8; 16], j: usize| {
                u32::from_le_bytes([v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]])
            };
            if (0..4).all(|j| {
                if j < lanes {
                    approx_lane_ok(lane(&h, j), lane(&g, j))
                } else {
                    lane(&h, j) == lane(&g, j)
                }
            }) {
                continue;
            }
        }
        why.push(format!(
            "xmm{k}: host {:#034x} interp {:#034x}",
            u128::from_le_bytes(h),
            u128::from_le_bytes(g)
        ));
    }
    if host.mxcsr != guest.mxcsr {
        why.push(format!(
            "mxcsr: host {:#x} interp {:#x}",
            host.mxcsr, guest.mxcsr
        ));
    }
    if (host.rflags ^ guest.rflags) & harness::FLAGS_CMP != 0 {
        why.push(format!(
            "rflags: host {:#x} interp {:#x}",
            host.rflags & harness::FLAGS_CMP,
            guest.rflags & harness::FLAGS_CMP
        ));
    }
    for (k, name) in ["rax", "rcx", "rdx"].iter().enumerate() {
        if host.gpr[k] != guest.gpr[k] {
            why.push(format!(
                "{name}: host {:#x} interp {:#x}",
                host.gpr[k], guest.gpr[k]
            ));
        }
    }
    if host.mem != guest.mem {
        why.push(format!(
            "memory: host {:02x?} interp {:02x?}",
            host.mem, guest.mem
        ));
    }
    why
}

/// Run every op of a family: `encodings` random encodings each, `per` inputs per encoding.
fn check(family: &str, ops: &[Op], encodings: usize, per: usize, salt: u64) -> usize {
    let mut rng = Rng::new(seed() ^ salt);
    let mut guest = Guest::new();
    let mut failures = Vec::new();
    let mut runs = 0;
    for op in ops {
        let mut failed = 0;
        for _ in 0..encodings {
            if failed >= 2 {
                break;
            }
            let (bytes, dst) = random_encoding(op, &mut rng);
            let case = Case::from_bytes(bytes, 1 << 3 | 1 << 7, Some(BASE_OFF));
            let code = HostCode::new(&case.bytes);
            guest.load(&case);
            for _ in 0..per {
                let inp = inputs(op, &mut rng);
                runs += 1;
                let host = run_host(&code, &inp);
                let why = match run_guest(&mut guest, &case, &inp) {
                    Ok(g) => compare(op, dst, &host, &g),
                    Err(e) => vec![e],
                };
                if !why.is_empty() {
                    failed += 1;
                    failures.push(format!(
                        "{} ({:02x?}) [{}]\n  inputs: xmm {:x?} mem {:02x?} gpr {:x?} mxcsr {:#x}\n  {}",
                        case.text,
                        case.bytes,
                        op.name,
                        inp.xmm,
                        inp.mem,
                        inp.gpr,
                        inp.mxcsr,
                        why.join("\n  ")
                    ));
                    break;
                }
            }
        }
    }
    eprintln!("{family}: {runs} runs over {} ops", ops.len());
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(30);
        panic!(
            "{family}: {n} mismatches (seed {:#x}); first ones:\n{}",
            seed(),
            failures.join("\n")
        );
    }
    runs
}

// ---- interpreter-only fault checks -------------------------------------------------------------

/// Run `bytes` once on the interpreter with `xmm` and `mxcsr`, after `tweak` adjusts the
/// state; returns the delivered vector (None if it retired) and the final state.
fn guest_once(
    bytes: &[u8],
    xmm: [u128; 8],
    mxcsr: u32,
    mem_off: u64,
    tweak: impl Fn(&mut cpu::CpuState),
) -> (Option<u64>, cpu::CpuState, Guest) {
    let mut guest = Guest::new();
    let case = Case::from_bytes(bytes.to_vec(), 1 << 3 | 1 << 7, Some(mem_off));
    guest.load(&case);
    let mut st = guest.base;
    st.cr4 |= cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
    for (k, x) in xmm.iter().enumerate() {
        st.fpu.xmm[k] = x.to_le_bytes();
    }
    st.fpu.mxcsr = mxcsr;
    tweak(&mut st);
    let mut gpr = [0u64; 16];
    gpr[3] = mem_off;
    gpr[7] = mem_off;
    let mut data = vec![0u8; DATA];
    if let Some(d) = data.get_mut(mem_off as usize..mem_off as usize + 4) {
        d.copy_from_slice(&0x1f80u32.to_le_bytes());
    }
    let input = Input {
        gpr,
        rflags: 0,
        data,
    };
    let r = match guest.run_from(&case, &input, &st) {
        GuestResult::Done(_) => None,
        GuestResult::Fault {
            vector, pushed_rip, ..
        } => {
            assert_eq!(pushed_rip, CODE, "faults are precise");
            Some(vector)
        }
    };
    let st = *guest.interp.state();
    assert!(
        r.is_some() || !(HANDLERS..HANDLERS + 512).contains(&st.rip),
        "retired"
    );
    (r, st, guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_host_sse_fp_matches() {
        let n = check("sse fp", table::FP, 48, 120, 1);
        assert!(n > 50_000);
    }

    #[test]
    fn test_host_sse_cvt_matches() {
        check("sse cvt", table::CVT, 48, 120, 2);
    }

    #[test]
    fn test_host_sse_int_matches() {
        check("sse int", table::INT, 16, 60, 3);
    }

    #[test]
    fn test_host_sse_mov_matches() {
        check("sse mov", table::MOV, 16, 60, 4);
    }

    /// CMPSD with XMM operands (F2 0F C2) shares its mnemonic with the string compare.
    #[test]
    fn test_host_sse_cmpsd_matches() {
        check("sse cmpsd", &[table::CMPSD], 24, 100, 5);
    }

    const ONE: u128 = 0x3f80_0000;
    // divps xmm0, xmm1
    const DIVPS: [u8; 3] = [0x0f, 0x5e, 0xc1];

    #[test]
    fn test_sse_ud_without_osfxsr_or_with_em() {
        let (v, _, _) = guest_once(&DIVPS, [ONE; 8], 0x1f80, BASE_OFF, |st| {
            st.cr4 &= !cr::CR4_OSFXSR
        });
        assert_eq!(v, Some(6));
        let (v, _, _) = guest_once(&DIVPS, [ONE; 8], 0x1f80, BASE_OFF, |st| {
            st.cr0 |= cr::CR0_EM | cr::CR0_TS
        });
        assert_eq!(v, Some(6), "#UD has priority over #NM");
        let (v, _, _) = guest_once(&DIVPS, [ONE; 8], 0x1f80, BASE_OFF, |_| {});
        assert_eq!(v, None);
    }

    #[test]
    fn test_sse_nm_with_ts() {
        let (v, st, _) = guest_once(&DIVPS, [ONE; 8], 0x1f80, BASE_OFF, |st| {
            st.cr0 |= cr::CR0_TS
        });
        assert_eq!(v, Some(7));
        assert_eq!(u128::from_le_bytes(st.fpu.xmm[0]), ONE);
    }

    #[test]
    fn test_sse_gp_on_misaligned_m128() {
        // movaps xmm0, [rbx+1]; movdqa; addps; movups (no fault).
        for (bytes, fault) in [
            (&[0x0f, 0x28, 0x43, 0x01][..], true),
            (&[0x66, 0x0f, 0x6f, 0x43, 0x01][..], true),
            (&[0x0f, 0x58, 0x43, 0x01][..], true),
            (&[0x0f, 0x29, 0x43, 0x01][..], true),
            (&[0x0f, 0x10, 0x43, 0x01][..], false),
            (&[0xf3, 0x0f, 0x6f, 0x43, 0x01][..], false),
            // addss xmm0, [rbx+1]: scalar, no alignment rule.
            (&[0xf3, 0x0f, 0x58, 0x43, 0x01][..], false),
        ] {
            let (v, _, _) = guest_once(bytes, [0; 8], 0x1f80, BASE_OFF, |_| {});
            assert_eq!(v, fault.then_some(13), "{bytes:02x?}");
        }
    }

    #[test]
    fn test_sse_unmasked_exception_xm_or_ud() {
        // 1/0 with ZM clear: #XM with OSXMMEXCPT, #UD without; ZE set, destination kept.
        let xmm = [ONE, 0, 0, 0, 0, 0, 0, 0];
        let (v, st, _) = guest_once(&DIVPS, xmm, 0x1f80 & !(1 << 9), BASE_OFF, |_| {});
        assert_eq!(v, Some(19));
        assert_eq!(u128::from_le_bytes(st.fpu.xmm[0]), ONE);
        assert_ne!(st.fpu.mxcsr & 4, 0, "ZE set");
        let (v, _, _) = guest_once(&DIVPS, xmm, 0x1f80 & !(1 << 9), BASE_OFF, |st| {
            st.cr4 &= !cr::CR4_OSXMMEXCPT
        });
        assert_eq!(v, Some(6));
        // Masked: no fault, infinity written.
        let (v, st, _) = guest_once(&DIVPS, xmm, 0x1f80, BASE_OFF, |_| {});
        assert_eq!(v, None);
        assert_eq!(
            u128::from_le_bytes(st.fpu.xmm[0]) & 0xffff_ffff,
            0x7f80_0000
        );
        // Unmasked precision on 1/3.
        let xmm = [ONE, 0x4040_0000, 0, 0, 0, 0, 0, 0];
        let (v, st, _) = guest_once(&DIVPS, xmm, 0x1f80 & !(1 << 12), BASE_OFF, |_| {});
        assert_eq!(v, Some(19));
        assert_ne!(st.fpu.mxcsr & 0x20, 0, "PE set");
    }

    #[test]
    fn test_sse_page_faults_leave_state() {
        // The scratch mapping ends at 4 MiB (GUEST_SCRATCH + 0x20_0000): nothing above.
        let end = 0x20_0000u64;
        // movaps xmm0, [rbx]
        let (v, st, _) = guest_once(&[0x0f, 0x28, 0x03], [ONE; 8], 0x1f80, end, |_| {});
        assert_eq!((v, st.cr2), (Some(14), end + harness::GUEST_SCRATCH));
        assert_eq!(u128::from_le_bytes(st.fpu.xmm[0]), ONE);
        // movups [rbx], xmm1 straddling the end: no byte of the mapped half is written.
        let (v, st, guest) =
            guest_once(&[0x0f, 0x11, 0x0b], [u128::MAX; 8], 0x1f80, end - 8, |_| {});
        assert_eq!((v, st.cr2), (Some(14), end + harness::GUEST_SCRATCH));
        let mut mapped = [0xaau8; 8];
        assert!(
            guest
                .ram
                .read(harness::GUEST_SCRATCH + end - 8, &mut mapped)
        );
        assert_eq!(mapped, [0; 8]);
    }

    #[test]
    fn test_sse_ldmxcsr_reserved_bits_gp() {
        // ldmxcsr [rbx]; the memory holds 0x1f80, then a reserved bit.
        let ld = [0x0f, 0xae, 0x13];
        let (v, st, _) = guest_once(&ld, [0; 8], 0x1f80 | 0x6000, BASE_OFF, |_| {});
        assert_eq!(v, None);
        assert_eq!(st.fpu.mxcsr, 0x1f80);
        let mut guest = Guest::new();
        let case = Case::from_bytes(ld.to_vec(), 1 << 3, Some(BASE_OFF));
        guest.load(&case);
        let mut st = guest.base;
        st.cr4 |= cr::CR4_OSFXSR;
        let mut data = vec![0u8; DATA];
        data[BASE_OFF as usize..BASE_OFF as usize + 4].copy_from_slice(&0x1_1f80u32.to_le_bytes());
        let mut gpr = [0u64; 16];
        gpr[3] = BASE_OFF;
        let input = Input {
            gpr,
            rflags: 0,
            data,
        };
        match guest.run_from(&case, &input, &st) {
            GuestResult::Fault { vector, .. } => assert_eq!(vector, 13),
            GuestResult::Done(_) => panic!("ldmxcsr with bit 16 set must #GP"),
        }
        assert_eq!(guest.interp.state().fpu.mxcsr, 0x1f80);
    }
}
