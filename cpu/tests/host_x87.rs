//! Ground truth from silicon for the x87 (SDM Vol. 1 ch. 8): each case runs a snippet natively
//! and on the interpreter: FNINIT, eight FLD m80 from scratch memory, FLDENV (random control
//! word: rounding, precision, masks; random empty registers, condition codes), the
//! instruction under test, FXSAVE into scratch; then the host's FCW and MXCSR are restored.
//! The x87 part of the FXSAVE image (FCW, FSW, abridged FTW, ST0-7), the memory operand,
//! RAX and the arithmetic flags must agree. FOP, FIP and FDP are not compared (AMD saves
//! them only with an exception pending). Interpreter-only tests cover #NM, #MF and FXRSTOR #GP.
//!
//! Seed: `VX_HOST_CHECK_SEED` (default fixed).

#[allow(dead_code)]
#[path = "host_check/harness.rs"]
mod harness;

use cpu::state::cr;
use harness::{CODE, Case, DATA, GUEST_SCRATCH, Guest, HANDLERS, Host, Input, Rng, STACK_OFF};
use iced_x86::Instruction;
use iced_x86::code_asm::*;

/// Scratch layout (offsets from RBX).
const SLOTS: i32 = 0x10; // eight 16-byte slots with the 80-bit register values
const ENV: i32 = 0x100; // 28-byte FLDENV image
const MEM: i32 = 0x140; // memory operand (16 bytes)
const OUT: i32 = 0x200; // FXSAVE image (512 bytes)
const RESTORE: i32 = 0x800; // host FCW (u16) at +0, MXCSR at +8
const AUX: i32 = 0x400; // FNSTENV/FNSAVE output, FRSTOR input (108 bytes)
const IMAGE: i32 = 0x600; // FXRSTOR input (512 bytes, 16-aligned)

type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;

/// How the memory operand is filled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MemKind {
    None,
    F32,
    F64,
    F80,
    I16,
    I32,
    I64,
    Bcd,
}

/// How results are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Exact,
    /// Transcendentals: ST values within 2^-40 relative; PE and C1 not compared.
    Approx,
}

struct Test {
    name: &'static str,
    emit: Emit,
    mem: MemKind,
    cmp: Cmp,
    /// Extra compared byte ranges of the AUX area (state images).
    aux: &'static [(usize, usize)],
}

macro_rules! t {
    ($name:expr, $mem:ident, $cmp:ident, |$a:ident| $body:expr) => {
        Test {
            name: $name,
            emit: |$a: &mut CodeAssembler| $body,
            mem: MemKind::$mem,
            cmp: Cmp::$cmp,
            aux: &[],
        }
    };
    ($name:expr, $mem:ident, |$a:ident| $body:expr) => {
        t!($name, $mem, Exact, |$a| $body)
    };
}

fn m() -> AsmMemoryOperand {
    rbx + MEM
}

fn tests() -> Vec<Test> {
    vec![
        t!("fadd st0,st1", None, |a| a.fadd_2(st0, st1)),
        t!("fadd st2,st0", None, |a| a.fadd_2(st2, st0)),
        t!("faddp st1", None, |a| a.faddp(st1, st0)),
        t!("fadd m32", F32, |a| a.fadd(dword_ptr(m()))),
        t!("fadd m64", F64, |a| a.fadd(qword_ptr(m()))),
        t!("fiadd m16", I16, |a| a.fiadd(word_ptr(m()))),
        t!("fiadd m32", I32, |a| a.fiadd(dword_ptr(m()))),
        t!("fsub st0,st1", None, |a| a.fsub_2(st0, st1)),
        t!("fsub st1,st0", None, |a| a.fsub_2(st1, st0)),
        t!("fsubp st1", None, |a| a.fsubp(st1, st0)),
        t!("fsubr st0,st1", None, |a| a.fsubr_2(st0, st1)),
        t!("fsubr st1,st0", None, |a| a.fsubr_2(st1, st0)),
        t!("fsubrp st2", None, |a| a.fsubrp(st2, st0)),
        t!("fsub m64", F64, |a| a.fsub(qword_ptr(m()))),
        t!("fsubr m32", F32, |a| a.fsubr(dword_ptr(m()))),
        t!("fisub m32", I32, |a| a.fisub(dword_ptr(m()))),
        t!("fisubr m16", I16, |a| a.fisubr(word_ptr(m()))),
        t!("fmul st0,st1", None, |a| a.fmul_2(st0, st1)),
        t!("fmulp st1", None, |a| a.fmulp(st1, st0)),
        t!("fmul m64", F64, |a| a.fmul(qword_ptr(m()))),
        t!("fimul m32", I32, |a| a.fimul(dword_ptr(m()))),
        t!("fdiv st0,st1", None, |a| a.fdiv_2(st0, st1)),
        t!("fdiv st1,st0", None, |a| a.fdiv_2(st1, st0)),
        t!("fdivp st1", None, |a| a.fdivp(st1, st0)),
        t!("fdivr st0,st1", None, |a| a.fdivr_2(st0, st1)),
        t!("fdivrp st1", None, |a| a.fdivrp(st1, st0)),
        t!("fdiv m32", F32, |a| a.fdiv(dword_ptr(m()))),
        t!("fdivr m64", F64, |a| a.fdivr(qword_ptr(m()))),
        t!("fidiv m16", I16, |a| a.fidiv(word_ptr(m()))),
        t!("fidivr m32", I32, |a| a.fidivr(dword_ptr(m()))),
        t!("fsqrt", None, |a| a.fsqrt()),
        t!("fchs", None, |a| a.fchs()),
        t!("fabs", None, |a| a.fabs()),
        t!("frndint", None, |a| a.frndint()),
        t!("fscale", None, |a| a.fscale()),
        t!("fxtract", None, |a| a.fxtract()),
        t!("fprem", None, |a| a.fprem()),
        t!("fprem1", None, |a| a.fprem1()),
        t!("fcom st1", None, |a| a.fcom_2(st0, st1)),
        t!("fcomp st2", None, |a| a.fcomp_2(st0, st2)),
        t!("fcompp", None, |a| a.fcompp()),
        t!("fucom st1", None, |a| a.fucom(st0, st1)),
        t!("fucomp st1", None, |a| a.fucomp(st0, st1)),
        t!("fucompp", None, |a| a.fucompp()),
        t!("fcom m32", F32, |a| a.fcom(dword_ptr(m()))),
        t!("fcomp m64", F64, |a| a.fcomp(qword_ptr(m()))),
        t!("ficom m16", I16, |a| a.ficom(word_ptr(m()))),
        t!("ficomp m32", I32, |a| a.ficomp(dword_ptr(m()))),
        t!("fcomi st1", None, |a| a.fcomi(st0, st1)),
        t!("fcomip st1", None, |a| a.fcomip(st0, st1)),
        t!("fucomi st2", None, |a| a.fucomi(st0, st2)),
        t!("fucomip st1", None, |a| a.fucomip(st0, st1)),
        t!("ftst", None, |a| a.ftst()),
        t!("fxam", None, |a| a.fxam()),
        t!("fld m32", F32, |a| a.fld(dword_ptr(m()))),
        t!("fld m64", F64, |a| a.fld(qword_ptr(m()))),
        t!("fld m80", F80, |a| a.fld(tword_ptr(m()))),
        t!("fld st3", None, |a| a.fld(st3)),
        t!("fild m16", I16, |a| a.fild(word_ptr(m()))),
        t!("fild m32", I32, |a| a.fild(dword_ptr(m()))),
        t!("fild m64", I64, |a| a.fild(qword_ptr(m()))),
        t!("fbld", Bcd, |a| a.fbld(tword_ptr(m()))),
        t!("fst m32", F32, |a| a.fst(dword_ptr(m()))),
        t!("fst m64", F64, |a| a.fst(qword_ptr(m()))),
        t!("fstp m32", F32, |a| a.fstp(dword_ptr(m()))),
        t!("fstp m64", F64, |a| a.fstp(qword_ptr(m()))),
        t!("fstp m80", F80, |a| a.fstp(tword_ptr(m()))),
        t!("fst st2", None, |a| a.fst(st2)),
        t!("fstp st1", None, |a| a.fstp(st1)),
        t!("fist m16", I16, |a| a.fist(word_ptr(m()))),
        t!("fist m32", I32, |a| a.fist(dword_ptr(m()))),
        t!("fistp m64", I64, |a| a.fistp(qword_ptr(m()))),
        t!("fistp m16", I16, |a| a.fistp(word_ptr(m()))),
        t!("fisttp m16", I16, |a| a.fisttp(word_ptr(m()))),
        t!("fisttp m32", I32, |a| a.fisttp(dword_ptr(m()))),
        t!("fisttp m64", I64, |a| a.fisttp(qword_ptr(m()))),
        t!("fbstp", Bcd, |a| a.fbstp(tword_ptr(m()))),
        t!("fld1", None, |a| a.fld1()),
        t!("fldz", None, |a| a.fldz()),
        t!("fldpi", None, |a| a.fldpi()),
        t!("fldl2e", None, |a| a.fldl2e()),
        t!("fldl2t", None, |a| a.fldl2t()),
        t!("fldlg2", None, |a| a.fldlg2()),
        t!("fldln2", None, |a| a.fldln2()),
        t!("fxch st1", None, |a| a.fxch(st0, st1)),
        t!("fxch st5", None, |a| a.fxch(st0, st5)),
        t!("fcmovb", None, |a| a.fcmovb(st0, st1)),
        t!("fcmove", None, |a| a.fcmove(st0, st2)),
        t!("fcmovbe", None, |a| a.fcmovbe(st0, st1)),
        t!("fcmovu", None, |a| a.fcmovu(st0, st1)),
        t!("fcmovnb", None, |a| a.fcmovnb(st0, st1)),
        t!("fcmovne", None, |a| a.fcmovne(st0, st1)),
        t!("fcmovnbe", None, |a| a.fcmovnbe(st0, st1)),
        t!("fcmovnu", None, |a| a.fcmovnu(st0, st1)),
        t!("ffree st1", None, |a| a.ffree(st1)),
        t!("fincstp", None, |a| a.fincstp()),
        t!("fdecstp", None, |a| a.fdecstp()),
        t!("fnop", None, |a| a.fnop()),
        t!("fnstsw ax", None, |a| a.fnstsw(ax)),
        t!("fnstsw m16", I16, |a| a.fnstsw(word_ptr(m()))),
        t!("fnstcw m16", I16, |a| a.fnstcw(word_ptr(m()))),
        t!("fnclex", None, |a| a.fnclex()),
        t!("fninit", None, |a| a.fninit()),
        Test {
            name: "fnstenv",
            emit: |a| a.fnstenv(ptr(rbx + AUX)),
            mem: MemKind::None,
            cmp: Cmp::Exact,
            aux: &[(0, 2), (4, 6), (8, 10)],
        },
        Test {
            name: "fnsave",
            emit: |a| a.fnsave(ptr(rbx + AUX)),
            mem: MemKind::None,
            cmp: Cmp::Exact,
            aux: &[(0, 2), (4, 6), (8, 10), (28, 108)],
        },
        t!("frstor", None, |a| a.frstor(ptr(rbx + AUX))),
        t!("fldenv", None, |a| a.fldenv(ptr(rbx + AUX))),
        t!("fxrstor64", None, |a| a.fxrstor64(ptr(rbx + IMAGE))),
        t!("fxrstor", None, |a| a.fxrstor(ptr(rbx + IMAGE))),
        t!("f2xm1", None, Approx, |a| a.f2xm1()),
        t!("fyl2x", None, Approx, |a| a.fyl2x()),
        t!("fyl2xp1", None, Approx, |a| a.fyl2xp1()),
        t!("fpatan", None, Approx, |a| a.fpatan()),
        t!("fsin", None, Approx, |a| a.fsin()),
        t!("fcos", None, Approx, |a| a.fcos()),
        t!("fsincos", None, Approx, |a| a.fsincos()),
        t!("fptan", None, Approx, |a| a.fptan()),
    ]
}

/// The whole snippet: prologue, the instruction, epilogue.
fn snippet(emit: Emit) -> (Vec<u8>, usize) {
    let asm = || -> Result<(Vec<u8>, usize), IcedError> {
        let mut a = CodeAssembler::new(64)?;
        a.fninit()?;
        for k in (0..8).rev() {
            a.fld(tword_ptr(rbx + SLOTS + 16 * k))?;
        }
        a.fldenv(ptr(rbx + ENV))?;
        let pre = a.assemble(0)?.len();
        emit(&mut a)?;
        a.fxsave64(ptr(rbx + OUT))?;
        a.fninit()?;
        a.fldcw(word_ptr(rbx + RESTORE))?;
        Ok((a.assemble(0)?, pre))
    };
    asm().expect("x87 snippet assembles")
}

// ---- operand generation ----------------------------------------------------------------------

fn f80(se: u16, mant: u64) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&mant.to_le_bytes());
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

/// An 80-bit value biased towards the special encodings and interesting exponents.
fn value80(rng: &mut Rng, near: Option<u16>) -> [u8; 10] {
    let sign = if rng.one_in(2) { 0x8000 } else { 0 };
    let j = 1u64 << 63;
    let rnd = rng.next();
    let (e, m) = match rng.below(24) {
        0 => (0, 0),
        1 => (0x7fff, j),
        2 => (
            0x7fff,
            j | 1 << 62 | ((rnd >> 2) * u64::from(rng.one_in(2))),
        ),
        3 => (0x7fff, j | ((rnd >> 2) | 1)),
        4 => (0, rnd >> 1 >> rng.below(60)),
        5 => (0, j | rnd),
        6 => (1 + rng.below(0x7ffd) as u16, rnd >> 1),
        7 => (0x7fff, rnd >> 1),
        8 => (0x3fff, j),
        9 => (
            0x3fff + rng.below(70) as u16,
            j | (rnd & !((1 << rng.below(64)) - 1)),
        ),
        10 => (
            rng.pick(&[1u16, 2, 0x7ffe, 0x7ffd, 0x3c01, 0x43fe, 0x3f81, 0x407e]),
            j | rnd,
        ),
        11 => (0x3fff, j | rnd >> 40),
        12 => (0x3fff + rng.below(4) as u16, j | (rnd << 40)),
        _ => {
            let e = match near {
                Some(n) if rng.one_in(2) => {
                    n.wrapping_add(rng.below(5) as u16).wrapping_sub(2) & 0x7fff
                }
                _ => 0x3fff - 20 + rng.below(40) as u16,
            };
            (e.clamp(1, 0x7ffe), j | rnd)
        }
    };
    f80(sign | e, m)
}

fn mem_value(rng: &mut Rng, kind: MemKind) -> [u8; 16] {
    let mut out = [0u8; 16];
    let r = rng.next();
    match kind {
        MemKind::None => out[..8].copy_from_slice(&r.to_le_bytes()),
        MemKind::F32 => {
            let v: u32 = match rng.below(8) {
                0 => rng.pick(&[
                    0,
                    0x8000_0000,
                    0x7f80_0000,
                    0xff80_0000,
                    0x7fc0_0000,
                    0x7fa0_0001,
                    0x0000_0001,
                    0x807f_ffff,
                    0x3f80_0000,
                ]),
                1 => (r as u32) & 0x807f_ffff,
                2 => 0x3f80_0000 ^ ((r as u32) & 0x8000_ffff),
                _ => ((r as u32) & 0x80ff_ffff) | (0x3b00_0000 + ((r >> 40) as u32 & 0x0700_0000)),
            };
            out[..4].copy_from_slice(&v.to_le_bytes());
        }
        MemKind::F64 => {
            let v: u64 = match rng.below(8) {
                0 => rng.pick(&[
                    0,
                    1 << 63,
                    0x7ff0 << 48,
                    0xfff0 << 48,
                    0x7ff8 << 48,
                    0x7ff4 << 48 | 5,
                    1,
                    0x3ff0 << 48,
                ]),
                1 => r & 0x800f_ffff_ffff_ffff,
                _ => (r & 0x800f_ffff_ffff_ffff) | ((0x3f0 + rng.below(32)) << 52),
            };
            out[..8].copy_from_slice(&v.to_le_bytes());
        }
        MemKind::F80 => out[..10].copy_from_slice(&value80(rng, None)),
        MemKind::I16 | MemKind::I32 | MemKind::I64 => {
            out[..8].copy_from_slice(&rng.value().to_le_bytes())
        }
        MemKind::Bcd => {
            for b in out.iter_mut().take(9) {
                *b = (rng.below(10) as u8) << 4 | rng.below(10) as u8;
            }
            out[9] = if rng.one_in(2) { 0x80 } else { 0 };
        }
    }
    out
}

/// Control word: all four rounding modes, the three precisions, mostly masked exceptions.
fn fcw(rng: &mut Rng, unmask: bool) -> u16 {
    let rc = rng.below(4) as u16;
    let pc = rng.pick(&[0u16, 2, 3, 3]);
    let masks = if unmask && rng.one_in(3) {
        0x3f & rng.next() as u16
    } else {
        0x3f
    };
    0x40 | rc << 10 | pc << 8 | masks
}

fn input(rng: &mut Rng, t: &Test) -> Input {
    let mut data = vec![0u8; DATA];
    let first = value80(rng, None);
    let near = Some(u16::from_le_bytes([first[8], first[9]]) & 0x7fff);
    for k in 0..8 {
        let v = if k == 0 { first } else { value80(rng, near) };
        let o = SLOTS as usize + 16 * k;
        data[o..o + 10].copy_from_slice(&v);
    }
    // Environment: FCW, FSW (masked flags only, condition codes, TOP 0), FTW (some empty).
    let cw = fcw(rng, t.cmp == Cmp::Exact);
    let sw = (rng.next() as u16 & 0x4700) | (rng.next() as u16 & cw & 0x3f);
    let mut tw = 0u16;
    for p in 0..8 {
        let empty = if p < 3 { rng.one_in(12) } else { rng.one_in(3) };
        if empty {
            tw |= 3 << (2 * p);
        }
    }
    let e = ENV as usize;
    data[e..e + 4].copy_from_slice(&u32::from(cw).to_le_bytes());
    data[e + 4..e + 8].copy_from_slice(&u32::from(sw).to_le_bytes());
    data[e + 8..e + 12].copy_from_slice(&u32::from(tw).to_le_bytes());
    if t.cmp == Cmp::Approx {
        // Inside each function's documented domain, moderate magnitudes: the interpreter
        // computes these in double precision (see x87/transcendental.rs).
        for k in 0..2 {
            let o = SLOTS as usize + 16 * k;
            let (lo, span) = match (t.name, k) {
                ("f2xm1", 0) => (0x3fff - 12, 12),
                ("fyl2xp1", 0) => (0x3fff - 12, 10),
                ("fsin" | "fcos" | "fsincos" | "fptan", 0) => (0x3fff - 10, 12),
                _ => (0x3fff - 8, 16),
            };
            let e = lo + rng.below(span) as u16;
            let sign = if t.name == "fyl2x" && k == 0 || !rng.one_in(2) {
                0
            } else {
                0x8000
            };
            let v = f80(sign | e, 1 << 63 | rng.next());
            data[o..o + 10].copy_from_slice(&v);
        }
    }
    // A 108-byte FRSTOR image (32-bit layout) and a 512-byte FXRSTOR image with random
    // control/status/tag words (masked exceptions only, so nothing traps on the host),
    // random registers and the default MXCSR.
    let cw2 = fcw(rng, false);
    let sw2 = rng.next() as u16 & 0x7f3f & !0x80 | (rng.next() as u16 & 0x3f & cw2);
    let sw2 = (sw2 & !0x3f) | (sw2 & cw2 & 0x3f);
    let tw2 = rng.next() as u16;
    let x = AUX as usize;
    data[x..x + 4].copy_from_slice(&u32::from(cw2).to_le_bytes());
    data[x + 4..x + 8].copy_from_slice(&u32::from(sw2).to_le_bytes());
    data[x + 8..x + 12].copy_from_slice(&u32::from(tw2).to_le_bytes());
    for k in 0..8 {
        let v = value80(rng, None);
        data[x + 28 + 10 * k..x + 38 + 10 * k].copy_from_slice(&v);
    }
    let im = IMAGE as usize;
    data[im..im + 2].copy_from_slice(&cw2.to_le_bytes());
    data[im + 2..im + 4].copy_from_slice(&sw2.to_le_bytes());
    data[im + 4] = rng.next() as u8;
    data[im + 24..im + 28].copy_from_slice(&0x1f80u32.to_le_bytes());
    for k in 0..8 {
        let v = value80(rng, None);
        data[im + 32 + 16 * k..im + 42 + 16 * k].copy_from_slice(&v);
    }
    for b in data[im + 160..im + 416].iter_mut() {
        *b = rng.next() as u8;
    }
    let mv = mem_value(rng, t.mem);
    data[MEM as usize..MEM as usize + 16].copy_from_slice(&mv);
    let r = RESTORE as usize;
    data[r..r + 2].copy_from_slice(&0x037fu16.to_le_bytes());
    data[r + 8..r + 12].copy_from_slice(&0x1f80u32.to_le_bytes());
    let mut gpr = [0u64; 16];
    gpr[0] = rng.next();
    gpr[3] = 0;
    gpr[4] = STACK_OFF;
    Input {
        gpr,
        rflags: rng.next() & harness::FLAGS_CMP,
        data,
    }
}

// ---- running -----------------------------------------------------------------------------

fn guest_run(
    g: &mut Guest,
    bytes: &[u8],
    inp: &Input,
) -> Result<(Vec<u8>, [u64; 16], u64), String> {
    assert!(g.ram.write(GUEST_SCRATCH, &inp.data));
    let st = g.interp.state_mut();
    *st = g.base;
    st.cr4 |= cr::CR4_OSFXSR;
    st.gpr = inp.gpr;
    st.gpr[3] = GUEST_SCRATCH;
    st.gpr[4] = GUEST_SCRATCH + STACK_OFF;
    st.rflags = (inp.rflags & harness::FLAGS_CMP) | 2;
    let end = CODE + bytes.len() as u64;
    for _ in 0..64 {
        g.interp.step(&g.io);
        let rip = g.interp.state().rip;
        if rip == end {
            let mut data = vec![0u8; DATA];
            assert!(g.ram.read(GUEST_SCRATCH, &mut data));
            let s = g.interp.state();
            return Ok((data, s.gpr, s.rflags));
        }
        if (HANDLERS..HANDLERS + 32 * 16).contains(&rip) {
            return Err(format!("vector {}", (rip - HANDLERS) / 16));
        }
    }
    Err("did not finish".into())
}

/// FSW bits compared for approximate cases (PE and C1 depend on the last bits).
const FSW_APPROX: u16 = !(0x20 | 0x200);

fn st_approx_eq(h: &[u8], g: &[u8]) -> bool {
    if h == g {
        return true;
    }
    let he = u16::from_le_bytes([h[8], h[9]]);
    let ge = u16::from_le_bytes([g[8], g[9]]);
    let hm = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    let gm = u64::from_le_bytes(g[..8].try_into().expect("8 bytes"));
    if he == ge {
        return hm.abs_diff(gm) < 1 << 24;
    }
    // Adjacent binades (a result next to a power of two).
    he.abs_diff(ge) == 1 && (hm >> 40).abs_diff(gm >> 40) <= 1 << 24
}

fn compare(t: &Test, h: &[u8], g: &[u8], hr: (u64, u64), gr: (u64, u64)) -> Option<String> {
    let o = OUT as usize;
    let mut why = Vec::new();
    let hw = |d: &[u8], k: usize| u16::from_le_bytes([d[o + k], d[o + k + 1]]);
    let fsw_mask = if t.cmp == Cmp::Approx {
        FSW_APPROX
    } else {
        0xffff
    };
    if hw(h, 0) != hw(g, 0) {
        why.push(format!("fcw host {:#x} interp {:#x}", hw(h, 0), hw(g, 0)));
    }
    if (hw(h, 2) ^ hw(g, 2)) & fsw_mask != 0 {
        why.push(format!("fsw host {:#x} interp {:#x}", hw(h, 2), hw(g, 2)));
    }
    if h[o + 4] != g[o + 4] {
        why.push(format!(
            "ftw host {:#04x} interp {:#04x}",
            h[o + 4],
            g[o + 4]
        ));
    }
    for k in 0..8 {
        let r = o + 32 + 16 * k;
        let (hv, gv) = (&h[r..r + 10], &g[r..r + 10]);
        let same = if t.cmp == Cmp::Approx {
            st_approx_eq(hv, gv)
        } else {
            hv == gv
        };
        if !same {
            why.push(format!("st{k} host {hv:02x?} interp {gv:02x?}"));
        }
    }
    let mm = MEM as usize;
    if h[mm..mm + 16] != g[mm..mm + 16] {
        why.push(format!(
            "mem host {:02x?} interp {:02x?}",
            &h[mm..mm + 16],
            &g[mm..mm + 16]
        ));
    }
    for &(lo, hi) in t.aux {
        let (lo, hi) = (AUX as usize + lo, AUX as usize + hi);
        if h[lo..hi] != g[lo..hi] {
            why.push(format!(
                "aux {lo:#x}..{hi:#x}: host {:02x?} interp {:02x?}",
                &h[lo..hi],
                &g[lo..hi]
            ));
        }
    }
    let env = ENV as usize;
    if h[env..env + 28] != g[env..env + 28] {
        why.push("env area changed differently".into());
    }
    if hr.0 != gr.0 {
        why.push(format!("rax host {:#x} interp {:#x}", hr.0, gr.0));
    }
    if (hr.1 ^ gr.1) & harness::FLAGS_CMP != 0 {
        why.push(format!(
            "rflags host {:#x} interp {:#x}",
            hr.1 & harness::FLAGS_CMP,
            gr.1 & harness::FLAGS_CMP
        ));
    }
    if why.is_empty() {
        None
    } else {
        Some(why.join("; "))
    }
}

fn describe(inp: &Input) -> String {
    let mut s = String::new();
    for k in 0..3 {
        let o = SLOTS as usize + 16 * k;
        let d = &inp.data[o..o + 10];
        s.push_str(&format!(
            "st{k}={:04x}:{:016x} ",
            u16::from_le_bytes([d[8], d[9]]),
            u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
        ));
    }
    let e = ENV as usize;
    let w = |k: usize| u16::from_le_bytes([inp.data[e + k], inp.data[e + k + 1]]);
    s.push_str(&format!("fcw={:#x} fsw={:#x} ftw={:#x} ", w(0), w(4), w(8)));
    s.push_str(&format!(
        "mem={:02x?} rflags={:#x}",
        &inp.data[MEM as usize..MEM as usize + 10],
        inp.rflags
    ));
    s
}

fn seed() -> u64 {
    std::env::var("VX_HOST_CHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x87_87_87)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x87_matches_host() {
        let mut rng = Rng::new(seed());
        let mut host = Host::new();
        let mut guest = Guest::new();
        let runs: usize = std::env::var("VX_X87_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(400);
        let mut failures = Vec::new();
        let mut total = 0;
        for t in tests() {
            let (bytes, _) = snippet(t.emit);
            let case = Case {
                bytes: bytes.clone(),
                instr: Instruction::default(),
                text: t.name.into(),
                ptrs: 1 << 3 | 1 << 4,
                mem_off: Some(MEM as u64),
            };
            let code = host.code(&bytes);
            assert!(guest.ram.write(CODE, &bytes));
            let mut fails = 0;
            for _ in 0..runs {
                let mut inp = input(&mut rng, &t);
                if t.cmp == Cmp::Approx {
                    // ST0 and ST1 in use, all exceptions masked.
                    let e = ENV as usize;
                    inp.data[e] |= 0x3f;
                    inp.data[e + 8] &= 0xf0;
                }
                total += 1;
                let h = host.run(&code, &case, &inp);
                match guest_run(&mut guest, &bytes, &inp) {
                    Err(e) => {
                        fails += 1;
                        if fails <= 3 {
                            failures.push(format!(
                                "{}: interpreter {e}\n  {}",
                                t.name,
                                describe(&inp)
                            ));
                        }
                    }
                    Ok((g, ggpr, gfl)) => {
                        if let Some(w) =
                            compare(&t, &h.data, &g, (h.gpr[0], h.rflags), (ggpr[0], gfl))
                        {
                            fails += 1;
                            if fails <= 3 {
                                failures.push(format!("{}: {w}\n  {}", t.name, describe(&inp)));
                            }
                        }
                    }
                }
            }
            if fails > 3 {
                failures.push(format!("{}: {fails} of {runs} runs differ", t.name));
            }
        }
        eprintln!("x87 host check: {total} runs");
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    // ---- interpreter-only: #NM, #MF, FXSAVE/FXRSTOR faults ---------------------------------------

    /// Assemble `f` at CODE.
    fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
        let mut a = CodeAssembler::new(64).expect("64-bit assembler");
        f(&mut a).expect("assembles");
        a.assemble(CODE).expect("assembles")
    }

    /// Run `bytes` on the interpreter with RBX = scratch and `setup` applied to the state;
    /// returns Ok(state) when it ran to the end, or Err((vector, pushed RIP, state)).
    fn run_guest(
        bytes: &[u8],
        data: &[u8],
        setup: impl FnOnce(&mut cpu::CpuState),
    ) -> Result<cpu::CpuState, Box<(u64, u64, cpu::CpuState)>> {
        let mut g = Guest::new();
        assert!(g.ram.write(CODE, bytes));
        assert!(g.ram.write(GUEST_SCRATCH, data));
        let st = g.interp.state_mut();
        *st = g.base;
        st.cr4 |= cr::CR4_OSFXSR;
        st.gpr[3] = GUEST_SCRATCH;
        st.gpr[4] = GUEST_SCRATCH + STACK_OFF;
        setup(st);
        let end = CODE + bytes.len() as u64;
        for _ in 0..64 {
            g.interp.step(&g.io);
            let s = *g.interp.state();
            if s.rip == end {
                return Ok(s);
            }
            if (HANDLERS..HANDLERS + 32 * 16).contains(&s.rip) {
                let v = (s.rip - HANDLERS) / 16;
                let at = if matches!(v, 8 | 10..=14 | 17) {
                    s.gpr[4] + 8
                } else {
                    s.gpr[4]
                };
                let mut frame = [0u8; 8];
                assert!(g.ram.read(at, &mut frame));
                return Err(Box::new((v, u64::from_le_bytes(frame), s)));
            }
        }
        panic!("guest did not finish");
    }

    fn vector_of(r: &Result<cpu::CpuState, Box<(u64, u64, cpu::CpuState)>>) -> Option<u64> {
        r.as_ref().err().map(|e| e.0)
    }

    #[test]
    fn test_x87_nm_on_em_and_ts() {
        let data = vec![0u8; 0x100];
        let fld1 = asm(|a| a.fld1());
        let fxsave = asm(|a| a.fxsave(ptr(rbx + 0x40)));
        let wait = asm(|a| a.wait());
        for (cr0_bits, code, expect) in [
            (cr::CR0_TS, &fld1, Some(7)),
            (cr::CR0_EM, &fld1, Some(7)),
            (cr::CR0_TS, &fxsave, Some(7)),
            (cr::CR0_EM, &fxsave, Some(7)),
            // WAIT faults only with TS and MP both set.
            (cr::CR0_TS, &wait, None),
            (cr::CR0_EM, &wait, None),
            (cr::CR0_TS | cr::CR0_MP, &wait, Some(7)),
            (cr::CR0_MP, &fld1, None),
        ] {
            let r = run_guest(code, &data, |s| s.cr0 |= cr0_bits);
            assert_eq!(
                vector_of(&r),
                expect,
                "cr0 bits {cr0_bits:#x} bytes {code:02x?}"
            );
            if let Err(e) = r {
                let (_, rip, st) = *e;
                assert_eq!(rip, CODE, "#NM reports the faulting instruction");
                assert_eq!(st.fpu.fsw & 0x3800, 0, "nothing was pushed");
            }
        }
    }

    #[test]
    fn test_x87_mf_on_next_waiting_instruction() {
        // FLDZ; FLD1; FDIV ST0,ST1 with ZE unmasked -> ES set, no fault yet; FNSTSW AX does not
        // wait; FWAIT raises #MF (CR0.NE set) reporting the FWAIT.
        let mut data = vec![0u8; 0x100];
        data[0..2].copy_from_slice(&(0x037fu16 & !0x04).to_le_bytes());
        let code = asm(|a| {
            a.fninit()?;
            a.fldcw(word_ptr(rbx))?;
            a.fldz()?;
            a.fld1()?;
            a.fdiv_2(st0, st1)?;
            a.fnstsw(ax)?;
            a.wait()?;
            a.nop()
        });
        let r = run_guest(&code, &data, |_| {});
        let Err(e) = r else { panic!("no #MF") };
        let (v, rip, st) = *e;
        assert_eq!(v, 16);
        let wait_at = CODE + code.len() as u64 - 2;
        assert_eq!(rip, wait_at, "#MF is reported on the FWAIT");
        assert_eq!(st.gpr[0] & 0x84, 0x84, "FNSTSW saw ES and ZE");
        assert_eq!(st.fpu.fsw & 0x8084, 0x8084, "B, ES and ZE stay set");
        // Non-waiting FNCLEX clears the condition; then FWAIT passes.
        let code2 = asm(|a| {
            a.fninit()?;
            a.fldcw(word_ptr(rbx))?;
            a.fldz()?;
            a.fld1()?;
            a.fdiv_2(st0, st1)?;
            a.fnclex()?;
            a.wait()?;
            a.fld1()
        });
        assert!(run_guest(&code2, &data, |_| {}).is_ok());
        // With CR0.NE clear the error is left to the (unmodelled) FERR# line: no #MF.
        assert!(run_guest(&code, &data, |s| s.cr0 &= !cr::CR0_NE).is_ok());
    }

    #[test]
    fn test_fxsave_fxrstor_faults_and_round_trip() {
        let mut data = vec![0u8; 0x800];
        // Misaligned operands raise #GP(0).
        for code in [
            asm(|a| a.fxsave(ptr(rbx + 0x48))),
            asm(|a| a.fxrstor64(ptr(rbx + 0x8))),
        ] {
            let r = run_guest(&code, &data, |_| {});
            assert_eq!(vector_of(&r), Some(13), "{code:02x?}");
        }
        // Reserved MXCSR bits in the image raise #GP(0) on FXRSTOR, and nothing is loaded.
        data[0x218..0x21c].copy_from_slice(&0x1_1f80u32.to_le_bytes());
        data[0x200..0x202].copy_from_slice(&0x0040u16.to_le_bytes());
        let rstor = asm(|a| a.fxrstor(ptr(rbx + 0x200)));
        match run_guest(&rstor, &data, |_| {}).map_err(|e| *e) {
            Err((13, rip, st)) => {
                assert_eq!(rip, CODE);
                assert_eq!(st.fpu.fcw, 0x037f, "FCW unchanged");
            }
            other => panic!("expected #GP, got {:?}", other.err().map(|e| e.0)),
        }
        // Round trip: FXSAVE64 of a state, FXRSTOR64 of the image into a reset state.
        let save = asm(|a| a.fxsave64(ptr(rbx + 0x400)));
        let mut fpu = cpu::CpuState::reset().fpu;
        fpu.fcw = 0x0a7f;
        fpu.fsw = 0x3a01;
        fpu.ftw = 0x85;
        fpu.fop = 0x5d9;
        fpu.fip = 0x1234_5678_9abc;
        fpu.fdp = 0xffff_8000_0000_1000;
        fpu.mxcsr = 0x9fc0;
        for k in 0..8 {
            fpu.st[k][..10].copy_from_slice(&[k as u8 + 1; 10]);
        }
        for k in 0..16 {
            fpu.xmm[k] = [0x10 + k as u8; 16];
        }
        let saved = run_guest(&save, &data, |s| s.fpu = fpu).expect("FXSAVE64 runs");
        let mut img = vec![0u8; 0x800];
        let both = asm(|a| {
            a.fxsave64(ptr(rbx + 0x400))?;
            a.fninit()?;
            a.fxrstor64(ptr(rbx + 0x400))
        });
        let restored = run_guest(&both, &img, |s| s.fpu = fpu).expect("round trip runs");
        assert_eq!(restored.fpu, fpu, "FXSAVE64 + FXRSTOR64 restore everything");
        assert_eq!(saved.fpu, fpu);
        // Without CR4.OSFXSR the XMM registers and MXCSR are neither saved nor restored.
        img.fill(0);
        let restored = run_guest(&both, &img, |s| {
            s.fpu = fpu;
            s.cr4 &= !cr::CR4_OSFXSR;
        })
        .expect("round trip without OSFXSR runs");
        assert_eq!(restored.fpu.st, fpu.st);
        assert_eq!(restored.fpu.xmm, fpu.xmm, "XMM untouched by FXRSTOR");
        // The 32-bit form keeps only the low halves of FIP/FDP.
        let both32 = asm(|a| {
            a.fxsave(ptr(rbx + 0x400))?;
            a.fxrstor(ptr(rbx + 0x400))
        });
        let r = run_guest(&both32, &img, |s| s.fpu = fpu).expect("32-bit round trip runs");
        assert_eq!(r.fpu.fip, fpu.fip & 0xffff_ffff);
        assert_eq!(r.fpu.fdp, fpu.fdp & 0xffff_ffff);
    }
}
