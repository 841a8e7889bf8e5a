//! Case and input generation for the host checks: instruction encodings from iced `Code`
//! names, edge-biased operands, per-family input shaping, the SDM's undefined-flag masks, and
//! an independent #DE predictor.

use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, Instruction, MemoryOperand, Mnemonic, OpKind, Register,
    RepPrefixKind,
};

use super::harness::{BASE_OFF, CODE, Case, DATA, Input, Rng, STACK_OFF};

pub const CF: u64 = 1;
pub const PF: u64 = 1 << 2;
pub const AF: u64 = 1 << 4;
pub const ZF: u64 = 1 << 6;
pub const SF: u64 = 1 << 7;
pub const DF: u64 = 1 << 10;
pub const OF: u64 = 1 << 11;
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;

pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RSI: usize = 6;
pub const RDI: usize = 7;

/// Counts tried for every immediate-count shift, rotate and bit-test form.
pub const COUNTS: [i32; 20] = [
    0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 31, 32, 33, 63, 64, 65, 127, 128, 255,
];

pub fn seed() -> u64 {
    std::env::var("VX_HOST_CHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd)
}

pub fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

pub fn sext(v: u64, size: u32) -> i64 {
    let sh = 64 - size * 8;
    ((v << sh) as i64) >> sh
}

// ---- building cases from iced `Code`s --------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub enum Tok {
    Rm(u32),
    R(u32),
    M,
    Fixed(Register),
    Imm(u32),
    One,
}

/// Operand tokens of a `Code` from its name (`Shl_rm8_CL` -> [rm8, CL]); None for forms the
/// generator does not handle.
pub fn tokens(code: Code) -> Option<Vec<Tok>> {
    let name = format!("{code:?}");
    let mut out = Vec::new();
    for t in name.split('_').skip(1) {
        out.push(match t {
            "rm8" => Tok::Rm(1),
            "rm16" => Tok::Rm(2),
            "rm32" => Tok::Rm(4),
            "rm64" => Tok::Rm(8),
            "r8" => Tok::R(1),
            "r16" => Tok::R(2),
            "r32" => Tok::R(4),
            "r64" => Tok::R(8),
            "m64" | "m128" => Tok::M,
            "AL" => Tok::Fixed(Register::AL),
            "AX" => Tok::Fixed(Register::AX),
            "EAX" => Tok::Fixed(Register::EAX),
            "RAX" => Tok::Fixed(Register::RAX),
            "CL" => Tok::Fixed(Register::CL),
            "imm8" => Tok::Imm(1),
            "imm16" => Tok::Imm(2),
            "imm32" => Tok::Imm(4),
            "imm64" => Tok::Imm(8),
            "1" => Tok::One,
            // Encoding tags: 82 (invalid in 64-bit mode anyway), F6r1/F7r1 (TEST aliases).
            "82" | "F6r1" | "F7r1" => continue,
            _ => return None,
        });
    }
    Some(out)
}

#[derive(Clone, Copy)]
pub enum Opnd {
    R(Register),
    M(MemoryOperand),
    I(i32),
}

pub fn make(code: Code, ops: &[Opnd]) -> Option<Instruction> {
    use Opnd::*;
    let r = match *ops {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Instruction::with1(code, a),
        [M(a)] => Instruction::with1(code, a),
        [R(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), M(b)] => Instruction::with2(code, a, b),
        [M(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), I(b)] => Instruction::with2(code, a, b),
        [M(a), I(b)] => Instruction::with2(code, a, b),
        [R(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        [R(a), M(b), I(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        _ => return None,
    };
    r.ok()
}

pub fn encode(instr: &Instruction) -> Option<Vec<u8>> {
    let mut enc = Encoder::new(64);
    enc.encode(instr, CODE).ok()?;
    Some(enc.take_buffer())
}

/// A random general-purpose register of `size` bytes whose 64-bit register is not in `avoid`.
pub fn pick_reg(rng: &mut Rng, size: u32, avoid: &[Register]) -> Register {
    let all: Vec<Register> = Register::values()
        .filter(|r| match size {
            1 => r.is_gpr8(),
            2 => r.is_gpr16(),
            4 => r.is_gpr32(),
            _ => r.is_gpr64(),
        })
        .filter(|r| !avoid.contains(&r.full_register()) && r.full_register() != Register::RSP)
        .collect();
    rng.pick(&all)
}

pub fn lockable(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Add | Adc
            | And
            | Btc
            | Btr
            | Bts
            | Cmpxchg
            | Cmpxchg8b
            | Cmpxchg16b
            | Dec
            | Inc
            | Neg
            | Not
            | Or
            | Sbb
            | Sub
            | Xor
            | Xadd
            | Xchg
    )
}

pub fn is_count_form(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd | Bt | Bts | Btr | Btc
    )
}

/// One case for `code`: random registers, the memory operand at a random displacement from a
/// random base register (a scratch pointer), and the given or a random immediate.
pub fn build(code: Code, toks: &[Tok], mem: bool, imm: Option<i32>, rng: &mut Rng) -> Option<Case> {
    let m = code.mnemonic();
    for _attempt in 0..20 {
        let wide = matches!(m, Mnemonic::Cmpxchg8b | Mnemonic::Cmpxchg16b);
        let bases: &[Register] = if wide {
            &[
                Register::RBP,
                Register::R12,
                Register::R13,
                Register::R14,
                Register::R15,
            ]
        } else {
            &[
                Register::RBX,
                Register::RBP,
                Register::R12,
                Register::R13,
                Register::R14,
                Register::R15,
            ]
        };
        let base = rng.pick(bases);
        let disp = if m == Mnemonic::Cmpxchg16b {
            rng.below(9) as i64 * 16 - 64
        } else {
            rng.below(129) as i64 - 64
        };
        let avoid: Vec<Register> = if mem { vec![base] } else { Vec::new() };
        let mut ops = Vec::new();
        for t in toks {
            ops.push(match *t {
                Tok::Rm(_) | Tok::M if mem => Opnd::M(MemoryOperand::with_base_displ(base, disp)),
                Tok::Rm(s) | Tok::R(s) => Opnd::R(pick_reg(rng, s, &avoid)),
                Tok::M => return None,
                Tok::Fixed(r) => Opnd::R(r),
                Tok::One => Opnd::I(1),
                Tok::Imm(s) => Opnd::I(imm.unwrap_or_else(|| {
                    let v = rng.value();
                    match s {
                        1 => (v as i8).into(),
                        2 => (v as i16).into(),
                        _ => v as i32,
                    }
                })),
            });
        }
        let Some(mut instr) = make(code, &ops) else {
            continue;
        };
        if mem && lockable(m) && rng.one_in(3) {
            instr.set_has_lock_prefix(true);
        }
        let Some(bytes) = encode(&instr) else {
            continue;
        };
        let back = Decoder::with_ip(64, &bytes, CODE, DecoderOptions::NONE).decode();
        if back.code() != code {
            return None;
        }
        let ptrs = if mem { 1 << base.number() } else { 0 };
        let mem_off = mem.then(|| BASE_OFF.wrapping_add(disp as u64));
        return Some(Case::from_bytes(bytes, ptrs, mem_off));
    }
    None
}

/// Cases for every 64-bit-mode encoding of `mnemonics`: register and memory variants,
/// `per_variant` random cases each (or one per count in COUNTS for immediate counts).
pub fn cases_for(mnemonics: &[Mnemonic], per_variant: usize, rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    for code in Code::values().filter(|c| mnemonics.contains(&c.mnemonic())) {
        let Some(toks) = tokens(code) else { continue };
        let has_rm = toks.iter().any(|t| matches!(t, Tok::Rm(_)));
        let has_m = toks.iter().any(|t| matches!(t, Tok::M));
        let variants: &[bool] = if has_m {
            &[true]
        } else if has_rm {
            &[false, true]
        } else {
            &[false]
        };
        let imm8 = toks.iter().any(|t| matches!(t, Tok::Imm(1)));
        for &mem in variants {
            if imm8 && is_count_form(code.mnemonic()) {
                for c in COUNTS {
                    cases.extend(build(code, &toks, mem, Some(c), rng));
                }
            } else {
                for _ in 0..per_variant {
                    cases.extend(build(code, &toks, mem, None, rng));
                }
            }
        }
    }
    cases
}

// ---- inputs ----------------------------------------------------------------------------------

/// Random inputs: registers biased to edge values, pointers at their scratch offsets, random
/// memory with an edge value at the memory operand.
pub fn base_input(case: &Case, rng: &mut Rng) -> Input {
    let mut gpr = [0u64; 16];
    for (r, v) in gpr.iter_mut().enumerate() {
        *v = if r == 4 {
            STACK_OFF
        } else if case.is_ptr(r) {
            BASE_OFF
        } else {
            rng.value()
        };
    }
    let mut data = vec![0u8; DATA];
    for chunk in data.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
    if let Some(off) = case.mem_off {
        let o = off as usize;
        data[o..o + 8].copy_from_slice(&rng.value().to_le_bytes());
        data[o + 8..o + 16].copy_from_slice(&rng.value().to_le_bytes());
    }
    Input {
        gpr,
        rflags: rng.next() & (STATUS | DF),
        data,
    }
}

/// Register index and high-byte flag of an iced register.
pub fn reg_slot(r: Register) -> (usize, bool) {
    let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    (r.full_register().number(), high)
}

pub fn get_reg(inp: &Input, r: Register) -> u64 {
    let (k, high) = reg_slot(r);
    if high {
        (inp.gpr[k] >> 8) & 0xff
    } else {
        inp.gpr[k] & mask(r.size() as u32)
    }
}

pub fn set_reg(inp: &mut Input, r: Register, v: u64) {
    let (k, high) = reg_slot(r);
    let (sh, m) = if high {
        (8, 0xff)
    } else {
        (0, mask(r.size() as u32))
    };
    inp.gpr[k] = (inp.gpr[k] & !(m << sh)) | ((v & m) << sh);
}

pub fn op_size(i: &Instruction, n: u32) -> u32 {
    match i.op_kind(n) {
        OpKind::Register => i.op_register(n).size() as u32,
        _ => i.memory_size().size() as u32,
    }
}

pub fn get_op(case: &Case, inp: &Input, n: u32) -> u64 {
    let i = &case.instr;
    match i.op_kind(n) {
        OpKind::Register => get_reg(inp, i.op_register(n)),
        OpKind::Memory => {
            let o = case.mem_off.expect("memory operand has an offset") as usize;
            let mut b = [0u8; 8];
            b.copy_from_slice(&inp.data[o..o + 8]);
            u64::from_le_bytes(b) & mask(op_size(i, n))
        }
        _ => i.immediate(n),
    }
}

pub fn set_op(case: &Case, inp: &mut Input, n: u32, v: u64) {
    let i = &case.instr;
    match i.op_kind(n) {
        OpKind::Register => set_reg(inp, i.op_register(n), v),
        OpKind::Memory => {
            let o = case.mem_off.expect("memory operand has an offset") as usize;
            let size = op_size(i, n) as usize;
            inp.data[o..o + size].copy_from_slice(&v.to_le_bytes()[..size]);
        }
        _ => {}
    }
}

/// Family-specific input shaping so the interesting paths are hit often.
pub fn fixup(case: &Case, inp: &mut Input, rng: &mut Rng) {
    use Mnemonic::*;
    let i = &case.instr;
    let m = i.mnemonic();
    // Shift counts in CL: mostly from the edge list, with junk in the rest of RCX.
    let count_op = match m {
        Shld | Shrd => Some(2),
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr => Some(1),
        _ => None,
    };
    if let Some(n) = count_op
        && i.op_kind(n) == OpKind::Register
        && rng.below(4) != 0
    {
        let c = rng.pick(&COUNTS) as u64;
        inp.gpr[RCX] = (inp.gpr[RCX] & !0xff) | c;
    }
    match m {
        Div | Idiv => {
            let size = op_size(i, 0);
            let d = get_op(case, inp, 0);
            if d != 0 && rng.below(4) != 0 {
                let hi = if m == Div {
                    rng.next() % d
                } else {
                    let lo = if size == 1 {
                        inp.gpr[RAX] & 0xff
                    } else {
                        inp.gpr[RAX] & mask(size)
                    };
                    if sext(lo, size) < 0 { u64::MAX } else { 0 }
                };
                if size == 1 {
                    set_reg(inp, Register::AH, hi);
                } else {
                    let k = RDX;
                    inp.gpr[k] = (inp.gpr[k] & !mask(size)) | (hi & mask(size));
                }
            }
        }
        Cmpxchg if rng.one_in(2) => {
            let size = op_size(i, 0);
            let d = get_op(case, inp, 0);
            inp.gpr[RAX] = (inp.gpr[RAX] & !mask(size)) | d;
        }
        Cmpxchg8b | Cmpxchg16b if rng.one_in(2) => {
            let half = if m == Cmpxchg16b { 8 } else { 4 };
            let o = case.mem_off.expect("memory operand") as usize;
            let rd = |k: usize| {
                let mut b = [0u8; 8];
                b[..half].copy_from_slice(&inp.data[k..k + half]);
                u64::from_le_bytes(b)
            };
            let (lo, hi) = (rd(o), rd(o + half));
            let m = mask(half as u32);
            inp.gpr[RAX] = (inp.gpr[RAX] & !m) | lo;
            inp.gpr[RDX] = (inp.gpr[RDX] & !m) | hi;
        }
        Bsf | Bsr if rng.one_in(3) => set_op(case, inp, 1, 0),
        Bt | Bts | Btr | Btc
            if i.op_kind(0) == OpKind::Memory && i.op_kind(1) == OpKind::Register =>
        {
            // Keep register bit offsets inside the scratch buffer: +-0xc00 bytes.
            let size = op_size(i, 0);
            let r = i.op_register(1);
            let (k, _) = reg_slot(r);
            let span = 0xc00 * 8;
            let off = (rng.below(2 * span) as i64 - span as i64) as u64;
            inp.gpr[k] = match size {
                2 => (inp.gpr[k] & !0xffff) | (off & 0xffff),
                4 => (inp.gpr[k] & !0xffff_ffff) | (off & 0xffff_ffff),
                _ => off,
            };
        }
        _ => {}
    }
}

/// The raw count operand (before masking) of a shift.
pub fn raw_count(case: &Case, inp: &Input, n: u32) -> u32 {
    (get_op(case, inp, n) & 0xff) as u32
}

/// Flags the SDM leaves undefined for this instruction and input.
pub fn undefined(case: &Case, inp: &Input) -> u64 {
    use Mnemonic::*;
    let i = &case.instr;
    let m = i.mnemonic();
    match m {
        And | Or | Xor | Test => AF,
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr => {
            let size = op_size(i, 0);
            let c = raw_count(case, inp, 1) & if size == 8 { 63 } else { 31 };
            match (c, m) {
                (0, _) => 0,
                (1, Rol | Ror | Rcl | Rcr) => 0,
                (_, Rol | Ror | Rcl | Rcr) => OF,
                _ => {
                    let mut u = AF;
                    if c > 1 {
                        u |= OF;
                    }
                    if matches!(m, Shl | Sal | Shr) && c >= size * 8 {
                        u |= CF;
                    }
                    u
                }
            }
        }
        Shld | Shrd => {
            let size = op_size(i, 0);
            let c = raw_count(case, inp, 2) & if size == 8 { 63 } else { 31 };
            match c {
                0 => 0,
                1 => AF,
                c if c > size * 8 => STATUS,
                _ => AF | OF,
            }
        }
        Mul | Imul => SF | ZF | AF | PF,
        Div | Idiv => STATUS,
        Bt | Bts | Btr | Btc => OF | SF | AF | PF,
        Bsf | Bsr => CF | OF | SF | AF | PF,
        _ => 0,
    }
}

/// Whether DIV/IDIV raise #DE on these inputs (computed independently of the interpreter, so
/// faulting divides are never run natively).
pub fn predicts_de(case: &Case, inp: &Input) -> bool {
    let i = &case.instr;
    let m = i.mnemonic();
    if !matches!(m, Mnemonic::Div | Mnemonic::Idiv) {
        return false;
    }
    let size = op_size(i, 0);
    let bits = size * 8;
    let d = get_op(case, inp, 0);
    if d == 0 {
        return true;
    }
    let (lo, hi) = if size == 1 {
        (inp.gpr[RAX] & 0xff, (inp.gpr[RAX] >> 8) & 0xff)
    } else {
        (inp.gpr[RAX] & mask(size), inp.gpr[RDX] & mask(size))
    };
    let n = (u128::from(hi) << bits) | u128::from(lo);
    if m == Mnemonic::Div {
        return n / u128::from(d) > u128::from(mask(size));
    }
    let n = ((n << (128 - 2 * bits)) as i128) >> (128 - 2 * bits);
    let d = i128::from(sext(d, size));
    let q = if n == i128::MIN && d == -1 {
        return true;
    } else {
        n / d
    };
    q < -(1i128 << (bits - 1)) || q >= (1i128 << (bits - 1))
}

// ---- string instructions ---------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StrKind {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
}

pub fn string_instr(kind: StrKind, size: u32, seg: Register, rep: RepPrefixKind) -> Instruction {
    use StrKind::*;
    let r = match (kind, size) {
        (Movs, 1) => Instruction::with_movsb(64, seg, rep),
        (Movs, 2) => Instruction::with_movsw(64, seg, rep),
        (Movs, 4) => Instruction::with_movsd(64, seg, rep),
        (Movs, _) => Instruction::with_movsq(64, seg, rep),
        (Stos, 1) => Instruction::with_stosb(64, rep),
        (Stos, 2) => Instruction::with_stosw(64, rep),
        (Stos, 4) => Instruction::with_stosd(64, rep),
        (Stos, _) => Instruction::with_stosq(64, rep),
        (Lods, 1) => Instruction::with_lodsb(64, seg, rep),
        (Lods, 2) => Instruction::with_lodsw(64, seg, rep),
        (Lods, 4) => Instruction::with_lodsd(64, seg, rep),
        (Lods, _) => Instruction::with_lodsq(64, seg, rep),
        (Cmps, 1) => Instruction::with_cmpsb(64, seg, rep),
        (Cmps, 2) => Instruction::with_cmpsw(64, seg, rep),
        (Cmps, 4) => Instruction::with_cmpsd(64, seg, rep),
        (Cmps, _) => Instruction::with_cmpsq(64, seg, rep),
        (Scas, 1) => Instruction::with_scasb(64, rep),
        (Scas, 2) => Instruction::with_scasw(64, rep),
        (Scas, 4) => Instruction::with_scasd(64, rep),
        (Scas, _) => Instruction::with_scasq(64, rep),
    };
    r.expect("string instruction builds")
}

pub fn string_cases() -> Vec<(StrKind, u32, Case)> {
    let mut out = Vec::new();
    for kind in [
        StrKind::Movs,
        StrKind::Stos,
        StrKind::Lods,
        StrKind::Cmps,
        StrKind::Scas,
    ] {
        for size in [1, 2, 4, 8] {
            for rep in [
                RepPrefixKind::None,
                RepPrefixKind::Repe,
                RepPrefixKind::Repne,
            ] {
                // Segment prefixes that are no-ops in 64-bit mode still exercise the decode
                // path; FS/GS bases differ between host and guest and are tested separately.
                for seg in [Register::None, Register::ES] {
                    if seg != Register::None && matches!(kind, StrKind::Stos | StrKind::Scas) {
                        continue;
                    }
                    let instr = string_instr(kind, size, seg, rep);
                    let bytes = encode(&instr).expect("string instruction encodes");
                    out.push((
                        kind,
                        size,
                        Case::from_bytes(bytes, 1 << RSI | 1 << RDI, None),
                    ));
                }
            }
        }
    }
    out
}

/// Pointers, count and data for a string instruction; every access stays in the scratch.
pub fn string_input(kind: StrKind, size: u32, case: &Case, rng: &mut Rng) -> Input {
    let mut inp = base_input(case, rng);
    let rep = case.instr.has_rep_prefix() || case.instr.has_repne_prefix();
    let sz = u64::from(size);
    let count = if !rep {
        1
    } else {
        match rng.below(6) {
            0 => rng.below(4),
            1 | 2 => rng.below(64),
            3 => rng.below(0x2000 / sz + 1),
            _ => rng.below(0x400 / sz + 1),
        }
    };
    if rep {
        inp.gpr[RCX] = count;
    }
    let down = inp.rflags & DF != 0;
    let len = count.max(1) * sz;
    let lo = 0x400u64;
    let hi = 0x2c00u64;
    let start = |rng: &mut Rng| {
        let span = hi - lo - len + 1;
        let first = lo + rng.below(span);
        if down { first + len - sz } else { first }
    };
    let (si, di) = (start(rng), start(rng));
    inp.gpr[RSI] = si;
    inp.gpr[RDI] = di;
    // Element k of the source/destination runs.
    let at = |base: u64, k: u64| -> usize {
        (if down { base - k * sz } else { base + k * sz }) as usize
    };
    let n = count.max(1);
    let s = size as usize;
    match kind {
        StrKind::Cmps => {
            if !case.instr.has_repne_prefix() {
                for k in 0..n {
                    let (a, b) = (at(si, k), at(di, k));
                    let src: Vec<u8> = inp.data[a..a + s].to_vec();
                    inp.data[b..b + s].copy_from_slice(&src);
                }
                if rng.one_in(2) {
                    let k = at(di, rng.below(n)) + rng.below(sz) as usize;
                    inp.data[k] ^= 1 << rng.below(8);
                }
            } else if rng.one_in(2) {
                let k = rng.below(n);
                let (a, b) = (at(si, k), at(di, k));
                let src: Vec<u8> = inp.data[a..a + s].to_vec();
                inp.data[b..b + s].copy_from_slice(&src);
            }
        }
        StrKind::Scas => {
            let v = inp.gpr[RAX].to_le_bytes();
            if !case.instr.has_repne_prefix() {
                for k in 0..n {
                    let b = at(di, k);
                    inp.data[b..b + s].copy_from_slice(&v[..s]);
                }
                if rng.one_in(2) {
                    let k = at(di, rng.below(n)) + rng.below(sz) as usize;
                    inp.data[k] ^= 1 << rng.below(8);
                }
            } else if rng.one_in(2) {
                let b = at(di, rng.below(n));
                inp.data[b..b + s].copy_from_slice(&v[..s]);
            }
        }
        _ => {}
    }
    inp
}
