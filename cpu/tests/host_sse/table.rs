//! The legacy SSE/SSE2 encodings the host check exercises (SDM Vol. 2 opcode map, Appendix
//! A.3, two-byte 0F opcodes with the 66/F3/F2 mandatory prefixes) and how to fill them.

/// What lives in the ModRM.reg field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegF {
    /// An XMM register (xmm0-xmm7).
    Xmm,
    /// A general register (rax, rcx or rdx).
    Gpr,
    /// An opcode extension (/digit).
    Ext(u8),
}

/// What ModRM.rm may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmF {
    /// xmm0-xmm7 or [rbx+disp8].
    XmmMem,
    /// xmm0-xmm7 only.
    Xmm,
    /// A general register or memory.
    GprMem,
    /// Memory only.
    Mem,
}

/// Element type used to shape random inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    Int,
    /// Shift counts: a small count in the low quadword.
    Count,
}

/// One encoding under test.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub name: &'static str,
    pub pfx: u8,
    pub op: u8,
    pub rex_w: bool,
    pub reg: RegF,
    pub rm: RmF,
    pub imm: bool,
    pub elem: Elem,
    /// Result is approximate (RCP/RSQRT): compared within the SDM's error bound.
    pub approx: bool,
}

const fn op(name: &'static str, pfx: u8, op: u8, reg: RegF, rm: RmF, elem: Elem) -> Op {
    Op {
        name,
        pfx,
        op,
        rex_w: false,
        reg,
        rm,
        imm: false,
        elem,
        approx: false,
    }
}

const fn xx(name: &'static str, pfx: u8, o: u8, elem: Elem) -> Op {
    op(name, pfx, o, RegF::Xmm, RmF::XmmMem, elem)
}

const fn imm(mut o: Op) -> Op {
    o.imm = true;
    o
}

const fn w(mut o: Op) -> Op {
    o.rex_w = true;
    o
}

const fn approx(mut o: Op) -> Op {
    o.approx = true;
    o
}

use Elem::*;

/// Floating-point arithmetic, compares and approximations.
pub const FP: &[Op] = &[
    xx("addps", 0, 0x58, F32),
    xx("addss", 0xf3, 0x58, F32),
    xx("addpd", 0x66, 0x58, F64),
    xx("addsd", 0xf2, 0x58, F64),
    xx("mulps", 0, 0x59, F32),
    xx("mulss", 0xf3, 0x59, F32),
    xx("mulpd", 0x66, 0x59, F64),
    xx("mulsd", 0xf2, 0x59, F64),
    xx("subps", 0, 0x5c, F32),
    xx("subss", 0xf3, 0x5c, F32),
    xx("subpd", 0x66, 0x5c, F64),
    xx("subsd", 0xf2, 0x5c, F64),
    xx("minps", 0, 0x5d, F32),
    xx("minss", 0xf3, 0x5d, F32),
    xx("minpd", 0x66, 0x5d, F64),
    xx("minsd", 0xf2, 0x5d, F64),
    xx("divps", 0, 0x5e, F32),
    xx("divss", 0xf3, 0x5e, F32),
    xx("divpd", 0x66, 0x5e, F64),
    xx("divsd", 0xf2, 0x5e, F64),
    xx("maxps", 0, 0x5f, F32),
    xx("maxss", 0xf3, 0x5f, F32),
    xx("maxpd", 0x66, 0x5f, F64),
    xx("maxsd", 0xf2, 0x5f, F64),
    xx("sqrtps", 0, 0x51, F32),
    xx("sqrtss", 0xf3, 0x51, F32),
    xx("sqrtpd", 0x66, 0x51, F64),
    xx("sqrtsd", 0xf2, 0x51, F64),
    approx(xx("rsqrtps", 0, 0x52, F32)),
    approx(xx("rsqrtss", 0xf3, 0x52, F32)),
    approx(xx("rcpps", 0, 0x53, F32)),
    approx(xx("rcpss", 0xf3, 0x53, F32)),
    imm(xx("cmpps", 0, 0xc2, F32)),
    imm(xx("cmpss", 0xf3, 0xc2, F32)),
    imm(xx("cmppd", 0x66, 0xc2, F64)),
    xx("ucomiss", 0, 0x2e, F32),
    xx("ucomisd", 0x66, 0x2e, F64),
    xx("comiss", 0, 0x2f, F32),
    xx("comisd", 0x66, 0x2f, F64),
];

/// CMPSD (F2 0F C2): kept apart because the dispatcher routes it to the string compare.
pub const CMPSD: Op = imm(xx("cmpsd", 0xf2, 0xc2, F64));

/// Conversions.
pub const CVT: &[Op] = &[
    op("cvtsi2ss", 0xf3, 0x2a, RegF::Xmm, RmF::GprMem, F32),
    w(op("cvtsi2ss", 0xf3, 0x2a, RegF::Xmm, RmF::GprMem, F32)),
    op("cvtsi2sd", 0xf2, 0x2a, RegF::Xmm, RmF::GprMem, F64),
    w(op("cvtsi2sd", 0xf2, 0x2a, RegF::Xmm, RmF::GprMem, F64)),
    op("cvttss2si", 0xf3, 0x2c, RegF::Gpr, RmF::XmmMem, F32),
    w(op("cvttss2si", 0xf3, 0x2c, RegF::Gpr, RmF::XmmMem, F32)),
    op("cvttsd2si", 0xf2, 0x2c, RegF::Gpr, RmF::XmmMem, F64),
    w(op("cvttsd2si", 0xf2, 0x2c, RegF::Gpr, RmF::XmmMem, F64)),
    op("cvtss2si", 0xf3, 0x2d, RegF::Gpr, RmF::XmmMem, F32),
    w(op("cvtss2si", 0xf3, 0x2d, RegF::Gpr, RmF::XmmMem, F32)),
    op("cvtsd2si", 0xf2, 0x2d, RegF::Gpr, RmF::XmmMem, F64),
    w(op("cvtsd2si", 0xf2, 0x2d, RegF::Gpr, RmF::XmmMem, F64)),
    xx("cvtps2pd", 0, 0x5a, F32),
    xx("cvtpd2ps", 0x66, 0x5a, F64),
    xx("cvtss2sd", 0xf3, 0x5a, F32),
    xx("cvtsd2ss", 0xf2, 0x5a, F64),
    xx("cvtdq2ps", 0, 0x5b, Int),
    xx("cvtps2dq", 0x66, 0x5b, F32),
    xx("cvttps2dq", 0xf3, 0x5b, F32),
    xx("cvttpd2dq", 0x66, 0xe6, F64),
    xx("cvtdq2pd", 0xf3, 0xe6, Int),
    xx("cvtpd2dq", 0xf2, 0xe6, F64),
];

/// Integer operations, FP-typed logic and shuffles.
pub const INT: &[Op] = &[
    xx("punpcklbw", 0x66, 0x60, Int),
    xx("punpcklwd", 0x66, 0x61, Int),
    xx("punpckldq", 0x66, 0x62, Int),
    xx("packsswb", 0x66, 0x63, Int),
    xx("pcmpgtb", 0x66, 0x64, Int),
    xx("pcmpgtw", 0x66, 0x65, Int),
    xx("pcmpgtd", 0x66, 0x66, Int),
    xx("packuswb", 0x66, 0x67, Int),
    xx("punpckhbw", 0x66, 0x68, Int),
    xx("punpckhwd", 0x66, 0x69, Int),
    xx("punpckhdq", 0x66, 0x6a, Int),
    xx("packssdw", 0x66, 0x6b, Int),
    xx("punpcklqdq", 0x66, 0x6c, Int),
    xx("punpckhqdq", 0x66, 0x6d, Int),
    imm(xx("pshufd", 0x66, 0x70, Int)),
    imm(xx("pshufhw", 0xf3, 0x70, Int)),
    imm(xx("pshuflw", 0xf2, 0x70, Int)),
    imm(op("psrlw", 0x66, 0x71, RegF::Ext(2), RmF::Xmm, Int)),
    imm(op("psraw", 0x66, 0x71, RegF::Ext(4), RmF::Xmm, Int)),
    imm(op("psllw", 0x66, 0x71, RegF::Ext(6), RmF::Xmm, Int)),
    imm(op("psrld", 0x66, 0x72, RegF::Ext(2), RmF::Xmm, Int)),
    imm(op("psrad", 0x66, 0x72, RegF::Ext(4), RmF::Xmm, Int)),
    imm(op("pslld", 0x66, 0x72, RegF::Ext(6), RmF::Xmm, Int)),
    imm(op("psrlq", 0x66, 0x73, RegF::Ext(2), RmF::Xmm, Int)),
    imm(op("psrldq", 0x66, 0x73, RegF::Ext(3), RmF::Xmm, Int)),
    imm(op("psllq", 0x66, 0x73, RegF::Ext(6), RmF::Xmm, Int)),
    imm(op("pslldq", 0x66, 0x73, RegF::Ext(7), RmF::Xmm, Int)),
    xx("pcmpeqb", 0x66, 0x74, Int),
    xx("pcmpeqw", 0x66, 0x75, Int),
    xx("pcmpeqd", 0x66, 0x76, Int),
    xx("psrlw", 0x66, 0xd1, Count),
    xx("psrld", 0x66, 0xd2, Count),
    xx("psrlq", 0x66, 0xd3, Count),
    xx("paddq", 0x66, 0xd4, Int),
    xx("pmullw", 0x66, 0xd5, Int),
    xx("psubusb", 0x66, 0xd8, Int),
    xx("psubusw", 0x66, 0xd9, Int),
    xx("pminub", 0x66, 0xda, Int),
    xx("pand", 0x66, 0xdb, Int),
    xx("paddusb", 0x66, 0xdc, Int),
    xx("paddusw", 0x66, 0xdd, Int),
    xx("pmaxub", 0x66, 0xde, Int),
    xx("pandn", 0x66, 0xdf, Int),
    xx("pavgb", 0x66, 0xe0, Int),
    xx("psraw", 0x66, 0xe1, Count),
    xx("psrad", 0x66, 0xe2, Count),
    xx("pavgw", 0x66, 0xe3, Int),
    xx("pmulhuw", 0x66, 0xe4, Int),
    xx("pmulhw", 0x66, 0xe5, Int),
    xx("psubsb", 0x66, 0xe8, Int),
    xx("psubsw", 0x66, 0xe9, Int),
    xx("pminsw", 0x66, 0xea, Int),
    xx("por", 0x66, 0xeb, Int),
    xx("paddsb", 0x66, 0xec, Int),
    xx("paddsw", 0x66, 0xed, Int),
    xx("pmaxsw", 0x66, 0xee, Int),
    xx("pxor", 0x66, 0xef, Int),
    xx("psllw", 0x66, 0xf1, Count),
    xx("pslld", 0x66, 0xf2, Count),
    xx("psllq", 0x66, 0xf3, Count),
    xx("pmuludq", 0x66, 0xf4, Int),
    xx("pmaddwd", 0x66, 0xf5, Int),
    xx("psadbw", 0x66, 0xf6, Int),
    xx("psubb", 0x66, 0xf8, Int),
    xx("psubw", 0x66, 0xf9, Int),
    xx("psubd", 0x66, 0xfa, Int),
    xx("psubq", 0x66, 0xfb, Int),
    xx("paddb", 0x66, 0xfc, Int),
    xx("paddw", 0x66, 0xfd, Int),
    xx("paddd", 0x66, 0xfe, Int),
    xx("andps", 0, 0x54, F32),
    xx("andpd", 0x66, 0x54, F64),
    xx("andnps", 0, 0x55, F32),
    xx("andnpd", 0x66, 0x55, F64),
    xx("orps", 0, 0x56, F32),
    xx("orpd", 0x66, 0x56, F64),
    xx("xorps", 0, 0x57, F32),
    xx("xorpd", 0x66, 0x57, F64),
    xx("unpcklps", 0, 0x14, F32),
    xx("unpcklpd", 0x66, 0x14, F64),
    xx("unpckhps", 0, 0x15, F32),
    xx("unpckhpd", 0x66, 0x15, F64),
    imm(xx("shufps", 0, 0xc6, F32)),
    imm(xx("shufpd", 0x66, 0xc6, F64)),
];

/// Moves.
pub const MOV: &[Op] = &[
    xx("movups", 0, 0x10, Int),
    xx("movss", 0xf3, 0x10, F32),
    xx("movupd", 0x66, 0x10, Int),
    xx("movsd", 0xf2, 0x10, F64),
    xx("movups st", 0, 0x11, Int),
    xx("movss st", 0xf3, 0x11, F32),
    xx("movupd st", 0x66, 0x11, Int),
    xx("movsd st", 0xf2, 0x11, F64),
    xx("movlps/movhlps", 0, 0x12, Int),
    op("movlpd", 0x66, 0x12, RegF::Xmm, RmF::Mem, Int),
    op("movlps st", 0, 0x13, RegF::Xmm, RmF::Mem, Int),
    op("movlpd st", 0x66, 0x13, RegF::Xmm, RmF::Mem, Int),
    xx("movhps/movlhps", 0, 0x16, Int),
    op("movhpd", 0x66, 0x16, RegF::Xmm, RmF::Mem, Int),
    op("movhps st", 0, 0x17, RegF::Xmm, RmF::Mem, Int),
    op("movhpd st", 0x66, 0x17, RegF::Xmm, RmF::Mem, Int),
    xx("movaps", 0, 0x28, Int),
    xx("movapd", 0x66, 0x28, Int),
    xx("movaps st", 0, 0x29, Int),
    xx("movapd st", 0x66, 0x29, Int),
    op("movntps", 0, 0x2b, RegF::Xmm, RmF::Mem, Int),
    op("movntpd", 0x66, 0x2b, RegF::Xmm, RmF::Mem, Int),
    op("movmskps", 0, 0x50, RegF::Gpr, RmF::Xmm, F32),
    op("movmskpd", 0x66, 0x50, RegF::Gpr, RmF::Xmm, F64),
    op("movd", 0x66, 0x6e, RegF::Xmm, RmF::GprMem, Int),
    w(op("movq", 0x66, 0x6e, RegF::Xmm, RmF::GprMem, Int)),
    xx("movdqa", 0x66, 0x6f, Int),
    xx("movdqu", 0xf3, 0x6f, Int),
    op("movd st", 0x66, 0x7e, RegF::Xmm, RmF::GprMem, Int),
    w(op("movq st", 0x66, 0x7e, RegF::Xmm, RmF::GprMem, Int)),
    xx("movq", 0xf3, 0x7e, Int),
    xx("movdqa st", 0x66, 0x7f, Int),
    xx("movdqu st", 0xf3, 0x7f, Int),
    op("movnti", 0, 0xc3, RegF::Gpr, RmF::Mem, Int),
    w(op("movnti", 0, 0xc3, RegF::Gpr, RmF::Mem, Int)),
    imm(op("pinsrw", 0x66, 0xc4, RegF::Xmm, RmF::GprMem, Int)),
    imm(op("pextrw", 0x66, 0xc5, RegF::Gpr, RmF::Xmm, Int)),
    xx("movq st", 0x66, 0xd6, Int),
    op("pmovmskb", 0x66, 0xd7, RegF::Gpr, RmF::Xmm, Int),
    op("movntdq", 0x66, 0xe7, RegF::Xmm, RmF::Mem, Int),
    op("maskmovdqu", 0x66, 0xf7, RegF::Xmm, RmF::Xmm, Int),
];
