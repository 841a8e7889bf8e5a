//! Lazy arithmetic flags (SDM Vol. 1 §3.4.3.1; the exact values are those of the interpreter's
//! `cpu::interp::flags`, which the differential tests hold the JIT to).
//!
//! At translate time the flags are a `Lazy` record of the last flag-producing operation and
//! its operand and result values. A consumer computes only what it needs: a `jcc` after `cmp`
//! becomes one host compare of the operands. At a block exit the record goes to `JitCtx`
//! (`cc_op`, `cc_a`, `cc_b`, `cc_r`, QEMU-style) with no flag computed at all; the next block,
//! a helper, or the run loop (before the interpreter runs) materializes RFLAGS from it on
//! demand with `materialize`.

use cranelift_codegen::ir::{InstBuilder, Value, condcodes::IntCC, types};
use iced_x86::ConditionCode;

use cpu::CpuState;
use cpu::interp::flags as f;
use cpu::state::flags::{AF, CF, OF, PF, SF, STATUS, ZF};

use crate::ctx::{JitCtx, cc};
use crate::offsets;
use crate::translate::{Translator, trusted};

/// Two-input arithmetic whose flags follow the add or subtract formulas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// ADD (no carry in: CF is `r < a`).
    Add,
    /// ADC.
    Adc,
    /// SUB, CMP, NEG (no borrow in: conditions are direct compares of a and b).
    Sub,
    /// SBB.
    Sbb,
}

/// The flags as left by the instructions translated so far. Values have the operation's
/// natural type (i8..i64) unless noted.
#[derive(Clone, Copy, Debug)]
pub enum Lazy {
    /// Not known at translate time: in `JitCtx` (or exact in `CpuState` when `cc_op` is NONE).
    Dynamic,
    /// The complete RFLAGS value (i64).
    Exact(Value),
    /// ADD/ADC/SUB/SBB/CMP/NEG of `a` and `b` giving `r`.
    Arith {
        /// Which formula.
        op: ArithOp,
        /// Operand size in bytes.
        size: u32,
        /// First operand.
        a: Value,
        /// Second operand.
        b: Value,
        /// Result.
        r: Value,
    },
    /// AND/OR/XOR/TEST giving `r`: CF = OF = AF = 0.
    Logic {
        /// Operand size in bytes.
        size: u32,
        /// Result.
        r: Value,
    },
    /// INC or DEC of `a` giving `r`; CF is preserved from before (`cf`, i64 0 or 1, or
    /// `None`: the carry of the dynamic record in the context, computed only if needed).
    IncDec {
        /// DEC.
        dec: bool,
        /// Operand size in bytes.
        size: u32,
        /// Operand.
        a: Value,
        /// Result.
        r: Value,
        /// The preserved carry (i64), or `None` for the dynamic record's.
        cf: Option<Value>,
    },
    /// A shift giving `r`, with CF and OF computed (i64 0 or 1); AF clear.
    Shift {
        /// Operand size in bytes.
        size: u32,
        /// Result.
        r: Value,
        /// Carry (i64).
        cf: Value,
        /// Overflow (i64).
        of: Value,
    },
    /// The dynamic flags with the status bits in `mask` replaced by those of `bits` (i64, in
    /// RFLAGS positions): IMUL, rotates, BT, CLC/STC/CMC, BSF/BSR when the other flags were
    /// not known at translate time.
    PatchDyn {
        /// Which status bits are replaced.
        mask: u64,
        /// Their values (other bits zero).
        bits: Value,
    },
}

/// The kind of a lazy record without its values: what a loop's back edge must reproduce for
/// the loop proper to keep the record in variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `Lazy::Dynamic`.
    Dynamic,
    /// `Lazy::Exact`.
    Exact,
    /// `Lazy::Arith`.
    Arith(ArithOp, u32),
    /// `Lazy::Logic`.
    Logic(u32),
    /// `Lazy::IncDec`.
    IncDec(bool, u32),
    /// `Lazy::Shift`.
    Shift(u32),
    /// `Lazy::PatchDyn` with this mask.
    PatchDyn(u64),
}

/// The shape of a record.
pub fn shape(l: &Lazy) -> Shape {
    match *l {
        Lazy::Dynamic => Shape::Dynamic,
        Lazy::Exact(_) => Shape::Exact,
        Lazy::Arith { op, size, .. } => Shape::Arith(op, size),
        Lazy::Logic { size, .. } => Shape::Logic(size),
        Lazy::IncDec { dec, size, .. } => Shape::IncDec(dec, size),
        Lazy::Shift { size, .. } => Shape::Shift(size),
        Lazy::PatchDyn { mask, .. } => Shape::PatchDyn(mask),
    }
}

/// The values of a record, in the order `rebuild` takes them.
pub fn values(l: &Lazy) -> Vec<Value> {
    match *l {
        Lazy::Dynamic => vec![],
        Lazy::Exact(v) => vec![v],
        Lazy::Arith { a, b, r, .. } => vec![a, b, r],
        Lazy::Logic { r, .. } => vec![r],
        Lazy::IncDec { a, r, cf, .. } => {
            vec![
                a,
                r,
                cf.expect("loop back edges normalize the record first"),
            ]
        }
        Lazy::Shift { r, cf, of, .. } => vec![r, cf, of],
        Lazy::PatchDyn { bits, .. } => vec![bits],
    }
}

/// A record of shape `s` with values `v` (as `values` lists them).
pub fn rebuild(s: Shape, v: &[Value]) -> Lazy {
    match s {
        Shape::Dynamic => Lazy::Dynamic,
        Shape::Exact => Lazy::Exact(v[0]),
        Shape::Arith(op, size) => Lazy::Arith {
            op,
            size,
            a: v[0],
            b: v[1],
            r: v[2],
        },
        Shape::Logic(size) => Lazy::Logic { size, r: v[0] },
        Shape::IncDec(dec, size) => Lazy::IncDec {
            dec,
            size,
            a: v[0],
            r: v[1],
            cf: Some(v[2]),
        },
        Shape::Shift(size) => Lazy::Shift {
            size,
            r: v[0],
            cf: v[1],
            of: v[2],
        },
        Shape::PatchDyn(mask) => Lazy::PatchDyn { mask, bits: v[0] },
    }
}

/// log2 of an operand size, the low bits of `cc_op`.
fn size_code(size: u32) -> u64 {
    match size {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

/// The six status flags of a lazy record (the interpreter's formulas).
pub fn status(cc_op: u64, a: u64, b: u64, r: u64) -> u64 {
    let size = 1u32 << (cc_op & 3);
    match cc_op & cc::OP_MASK {
        cc::ADD => f::add(a, b, r, size),
        cc::SUB => f::sub(a, b, r, size),
        cc::LOGIC => f::logic(r, size),
        cc::INC => (f::add(a, 1, r, size) & !CF) | (b & 1),
        cc::DEC => (f::sub(a, 1, r, size) & !CF) | (b & 1),
        cc::SHIFT => f::szp(r, size) | ((a & 1) * CF) | ((b & 1) * OF),
        _ => 0,
    }
}

/// Make `st.rflags` exact from the lazy record in `ctx` (and mark it so).
pub fn materialize(ctx: &mut JitCtx, st: &mut CpuState) {
    if ctx.cc_op != cc::NONE {
        let s = status(ctx.cc_op, ctx.cc_a, ctx.cc_b, ctx.cc_r);
        st.rflags = (st.rflags & !STATUS) | s;
        ctx.cc_op = cc::NONE;
    }
}

impl Translator<'_, '_> {
    fn bool_const(&mut self, v: bool) -> Value {
        self.b.ins().iconst(types::I8, i64::from(v))
    }

    fn not(&mut self, x: Value) -> Value {
        self.b.ins().bxor_imm_s(x, 1)
    }

    fn msb(&mut self, x: Value) -> Value {
        self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0)
    }

    fn bit_of(&mut self, v: Value, bit: u64) -> Value {
        let m = self.b.ins().band_imm_s(v, bit as i64);
        self.b.ins().icmp_imm_s(IntCC::NotEqual, m, 0)
    }

    fn i64_is_set(&mut self, v: Value) -> Value {
        self.b.ins().icmp_imm_s(IntCC::NotEqual, v, 0)
    }

    fn parity_even(&mut self, r: Value, size: u32) -> Value {
        let lo = if size > 1 {
            self.b.ins().ireduce(types::I8, r)
        } else {
            r
        };
        let pc = self.b.ins().popcnt(lo);
        let odd = self.b.ins().band_imm_s(pc, 1);
        self.b.ins().icmp_imm_s(IntCC::Equal, odd, 0)
    }

    fn signed_min(&mut self, size: u32) -> u64 {
        1u64 << (size * 8 - 1)
    }

    /// The exact RFLAGS value now (i64). Dynamic flags are materialized by a helper call,
    /// after which they are known exactly.
    pub fn rflags_now(&mut self) -> Value {
        match self.lazy {
            Lazy::Exact(v) => v,
            Lazy::Dynamic => {
                let v = self.call_flags_helper();
                self.lazy = Lazy::Exact(v);
                v
            }
            Lazy::PatchDyn { mask, bits } => {
                let base = self.call_flags_helper();
                let v = self.merge_bits(base, mask, bits);
                self.lazy = Lazy::Exact(v);
                v
            }
            lazy => {
                let bits = self.status_bits(lazy);
                let old = self
                    .b
                    .ins()
                    .load(types::I64, trusted(), self.st, offsets::RFLAGS);
                let base = self.b.ins().band_imm_s(old, !(STATUS as i64));
                self.b.ins().bor(base, bits)
            }
        }
    }

    fn call_flags_helper(&mut self) -> Value {
        self.call_helper(crate::translate::Helper::Flags, &[])
    }

    fn merge_bits(&mut self, base: Value, mask: u64, bits: Value) -> Value {
        let cleared = self.b.ins().band_imm_s(base, !(mask as i64));
        self.b.ins().bor(cleared, bits)
    }

    /// Replace the status bits in `mask` with `bits` (i64, RFLAGS positions, nothing outside
    /// `mask`), keeping the other flags.
    pub fn patch_flags(&mut self, mask: u64, bits: Value) {
        self.lazy = match self.lazy {
            Lazy::Dynamic => Lazy::PatchDyn { mask, bits },
            Lazy::PatchDyn { mask: m0, bits: b0 } => {
                let kept = self.b.ins().band_imm_s(b0, !(mask as i64));
                Lazy::PatchDyn {
                    mask: m0 | mask,
                    bits: self.b.ins().bor(kept, bits),
                }
            }
            _ => {
                let base = self.rflags_now();
                Lazy::Exact(self.merge_bits(base, mask, bits))
            }
        };
    }

    /// Replace CF and OF (i64 0 or 1 each), keeping the other flags: IMUL, rotates.
    pub fn set_cf_of(&mut self, cf: Value, of: Value) {
        let o = self.b.ins().ishl_imm_s(of, 11);
        let bits = self.b.ins().bor(cf, o);
        self.patch_flags(CF | OF, bits);
    }

    /// The six status flags of a statically known record, as RFLAGS bits (i64).
    fn status_bits(&mut self, lazy: Lazy) -> Value {
        let (size, r) = match lazy {
            Lazy::Arith { size, r, .. }
            | Lazy::Logic { size, r }
            | Lazy::IncDec { size, r, .. }
            | Lazy::Shift { size, r, .. } => (size, r),
            _ => unreachable!("status_bits is called only for static records"),
        };
        let cf = self.cf_of(lazy);
        let of = self.of_of(lazy);
        let zf = self.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
        let sf = self.msb(r);
        let pf = self.parity_even(r, size);
        let af = match lazy {
            Lazy::Arith { a, b, r, .. } => {
                let x = self.b.ins().bxor(a, b);
                let x = self.b.ins().bxor(x, r);
                let m = self.b.ins().band_imm_s(x, AF as i64);
                Some(self.zext64(m, size))
            }
            Lazy::IncDec { a, r, .. } => {
                let x = self.b.ins().bxor(a, r);
                let x = self.b.ins().bxor_imm_s(x, 1);
                let m = self.b.ins().band_imm_s(x, AF as i64);
                Some(self.zext64(m, size))
            }
            _ => None,
        };
        let mut acc = self.b.ins().uextend(types::I64, cf);
        for (flag, bit) in [(pf, PF), (zf, ZF), (sf, SF), (of, OF)] {
            let x = self.b.ins().uextend(types::I64, flag);
            let x = self.b.ins().ishl_imm_s(x, i64::from(bit.trailing_zeros()));
            acc = self.b.ins().bor(acc, x);
        }
        if let Some(af) = af {
            acc = self.b.ins().bor(acc, af);
        }
        acc
    }

    /// CF of a static record (i8 boolean).
    fn cf_of(&mut self, lazy: Lazy) -> Value {
        match lazy {
            Lazy::Arith {
                op: ArithOp::Add,
                a,
                r,
                ..
            } => self.b.ins().icmp(IntCC::UnsignedLessThan, r, a),
            Lazy::Arith {
                op: ArithOp::Sub,
                a,
                b,
                ..
            } => self.b.ins().icmp(IntCC::UnsignedLessThan, a, b),
            Lazy::Arith {
                op: ArithOp::Adc,
                a,
                b,
                r,
                ..
            } => {
                // carry out = (a & b) | ((a | b) & !r), top bit.
                let ab = self.b.ins().band(a, b);
                let aob = self.b.ins().bor(a, b);
                let nr = self.b.ins().bnot(r);
                let t = self.b.ins().band(aob, nr);
                let c = self.b.ins().bor(ab, t);
                self.msb(c)
            }
            Lazy::Arith {
                op: ArithOp::Sbb,
                a,
                b,
                r,
                ..
            } => {
                // borrow out = (!a & b) | (!(a ^ b) & r), top bit.
                let na = self.b.ins().bnot(a);
                let t1 = self.b.ins().band(na, b);
                let x = self.b.ins().bxor(a, b);
                let nx = self.b.ins().bnot(x);
                let t2 = self.b.ins().band(nx, r);
                let c = self.b.ins().bor(t1, t2);
                self.msb(c)
            }
            Lazy::Logic { .. } => self.bool_const(false),
            Lazy::IncDec { cf: Some(cf), .. } | Lazy::Shift { cf, .. } => self.i64_is_set(cf),
            Lazy::IncDec { cf: None, .. } => {
                let c = self.dynamic_carry();
                self.i64_is_set(c)
            }
            Lazy::PatchDyn { mask, bits } if mask & CF != 0 => self.bit_of(bits, CF),
            Lazy::PatchDyn { .. } => {
                let c = self.dynamic_carry();
                self.i64_is_set(c)
            }
            Lazy::Exact(v) => self.bit_of(v, CF),
            Lazy::Dynamic => unreachable!("dynamic flags are materialized first"),
        }
    }

    /// OF of a static record (i8 boolean).
    fn of_of(&mut self, lazy: Lazy) -> Value {
        match lazy {
            Lazy::Arith {
                op: ArithOp::Add | ArithOp::Adc,
                a,
                b,
                r,
                ..
            } => {
                let x = self.b.ins().bxor(a, r);
                let y = self.b.ins().bxor(b, r);
                let z = self.b.ins().band(x, y);
                self.msb(z)
            }
            Lazy::Arith {
                op: ArithOp::Sub | ArithOp::Sbb,
                a,
                b,
                r,
                ..
            } => {
                let x = self.b.ins().bxor(a, b);
                let y = self.b.ins().bxor(a, r);
                let z = self.b.ins().band(x, y);
                self.msb(z)
            }
            Lazy::Logic { .. } => self.bool_const(false),
            Lazy::IncDec {
                dec, size, a, r, ..
            } => {
                let min = self.signed_min(size);
                let min = self.imm(size, min);
                // INC overflows into the sign bit; DEC overflows out of it.
                let v = if dec { a } else { r };
                self.b.ins().icmp(IntCC::Equal, v, min)
            }
            Lazy::Shift { of, .. } => self.i64_is_set(of),
            Lazy::PatchDyn { mask, bits } if mask & OF != 0 => self.bit_of(bits, OF),
            Lazy::PatchDyn { .. } => {
                let v = self.rflags_now();
                self.bit_of(v, OF)
            }
            Lazy::Exact(v) => self.bit_of(v, OF),
            Lazy::Dynamic => unreachable!("dynamic flags are materialized first"),
        }
    }

    /// The current lazy record, with dynamic flags materialized (so every flag is computable).
    fn known(&mut self) -> Lazy {
        match self.lazy {
            Lazy::Dynamic => {
                self.rflags_now();
                self.lazy
            }
            l => l,
        }
    }

    /// CF of the record in the context, computed inline (no helper call): the interpreter's
    /// carry formulas on the stored operands, selected by `cc_op`.
    fn dynamic_carry(&mut self) -> Value {
        let ld = |t: &mut Self, off: i32| t.b.ins().load(types::I64, trusted(), t.ctx, off);
        let op = ld(self, offsets::ctx::CC_OP);
        let a = ld(self, offsets::ctx::CC_A);
        let b = ld(self, offsets::ctx::CC_B);
        let r = ld(self, offsets::ctx::CC_R);
        let rf = self
            .b
            .ins()
            .load(types::I64, trusted(), self.st, offsets::RFLAGS);
        // Top bit index: 8 << (op & 3) minus one.
        let sz = self.b.ins().band_imm_s(op, 3);
        let eight = self.b.ins().iconst(types::I64, 8);
        let bits = self.b.ins().ishl(eight, sz);
        let top = self.b.ins().iadd_imm_s(bits, -1);
        // ADD: (a & b) | ((a | b) & !r); SUB: (!a & b) | (!(a ^ b) & r).
        let ab = self.b.ins().band(a, b);
        let aob = self.b.ins().bor(a, b);
        let nr = self.b.ins().bnot(r);
        let t1 = self.b.ins().band(aob, nr);
        let add_c = self.b.ins().bor(ab, t1);
        let na = self.b.ins().bnot(a);
        let s1 = self.b.ins().band(na, b);
        let x = self.b.ins().bxor(a, b);
        let nx = self.b.ins().bnot(x);
        let s2 = self.b.ins().band(nx, r);
        let sub_c = self.b.ins().bor(s1, s2);
        let kind = self.b.ins().band_imm_s(op, cc::OP_MASK as i64);
        let is_add = self.b.ins().icmp_imm_s(IntCC::Equal, kind, cc::ADD as i64);
        let is_sub = self.b.ins().icmp_imm_s(IntCC::Equal, kind, cc::SUB as i64);
        let arith = self.b.ins().select(is_add, add_c, sub_c);
        let arith_c = self.b.ins().ushr(arith, top);
        // INC/DEC keep it in b, SHIFT in a, NONE in RFLAGS; LOGIC clears it.
        let kind2 = self.b.ins().band_imm_s(kind, !4i64);
        let is_incdec = self.b.ins().icmp_imm_s(IntCC::Equal, kind2, cc::INC as i64);
        let is_shift = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, kind, cc::SHIFT as i64);
        let is_none = self.b.ins().icmp_imm_s(IntCC::Equal, kind, cc::NONE as i64);
        let zero = self.b.ins().iconst(types::I64, 0);
        let v = self.b.ins().select(is_none, rf, zero);
        let v = self.b.ins().select(is_shift, a, v);
        let v = self.b.ins().select(is_incdec, b, v);
        let either = self.b.ins().bor(is_add, is_sub);
        let v = self.b.ins().select(either, arith_c, v);
        self.b.ins().band_imm_s(v, 1)
    }

    /// Prepare the record for a loop's variables: compute a pending dynamic carry, and pin
    /// the carry values (store them, so they are computed before the loop: a use only in
    /// the loop's exits would otherwise keep all their inputs alive through it).
    pub fn normalize_for_loop(&mut self) {
        if let Lazy::IncDec {
            dec,
            size,
            a,
            r,
            cf: None,
        } = self.lazy
        {
            let cf = Some(self.dynamic_carry());
            self.lazy = Lazy::IncDec {
                dec,
                size,
                a,
                r,
                cf,
            };
        }
        let pin = match self.lazy {
            Lazy::IncDec { cf: Some(cf), .. } | Lazy::Shift { cf, .. } => Some(cf),
            Lazy::PatchDyn { bits, .. } => Some(bits),
            _ => None,
        };
        if let Some(v) = pin {
            self.b
                .ins()
                .store(trusted(), v, self.ctx, offsets::ctx::PIN);
        }
    }

    /// CF now, as an i64 0 or 1 (for ADC, SBB, INC, DEC).
    pub fn carry_i64(&mut self) -> Value {
        if let Lazy::Dynamic = self.lazy {
            return self.dynamic_carry();
        }
        let l = self.known();
        let c = match l {
            Lazy::IncDec { cf: Some(cf), .. } | Lazy::Shift { cf, .. } => return cf,
            Lazy::IncDec { cf: None, .. } => return self.dynamic_carry(),
            Lazy::PatchDyn { mask, bits } if mask & CF != 0 => {
                return self.b.ins().band_imm_s(bits, 1);
            }
            Lazy::PatchDyn { .. } => {
                let c = self.dynamic_carry();
                return c;
            }
            _ => self.cf_of(l),
        };
        self.b.ins().uextend(types::I64, c)
    }

    fn flag(&mut self, bit: u64) -> Value {
        let l = self.known();
        match (l, bit) {
            (Lazy::Exact(v), _) => self.bit_of(v, bit),
            (Lazy::PatchDyn { mask, bits }, b) if mask & b != 0 => self.bit_of(bits, b),
            (Lazy::PatchDyn { .. }, b) => {
                let v = self.rflags_now();
                self.bit_of(v, b)
            }
            (_, CF) => self.cf_of(l),
            (_, OF) => self.of_of(l),
            (
                Lazy::Arith { r, .. }
                | Lazy::Logic { r, .. }
                | Lazy::IncDec { r, .. }
                | Lazy::Shift { r, .. },
                ZF,
            ) => self.b.ins().icmp_imm_s(IntCC::Equal, r, 0),
            (
                Lazy::Arith { r, .. }
                | Lazy::Logic { r, .. }
                | Lazy::IncDec { r, .. }
                | Lazy::Shift { r, .. },
                SF,
            ) => self.msb(r),
            (
                Lazy::Arith { size, r, .. }
                | Lazy::Logic { size, r }
                | Lazy::IncDec { size, r, .. }
                | Lazy::Shift { size, r, .. },
                PF,
            ) => self.parity_even(r, size),
            _ => unreachable!("flag() is asked only for CF, OF, ZF, SF, PF"),
        }
    }

    /// Evaluate condition `cc` (i8 boolean).
    pub fn cond(&mut self, cc: ConditionCode) -> Value {
        use ConditionCode as C;
        // Direct compares after SUB/CMP and logic operations.
        match self.lazy {
            Lazy::Arith {
                op: ArithOp::Sub,
                a,
                b,
                r,
                ..
            } => {
                let icc = match cc {
                    C::b => Some(IntCC::UnsignedLessThan),
                    C::ae => Some(IntCC::UnsignedGreaterThanOrEqual),
                    C::e => Some(IntCC::Equal),
                    C::ne => Some(IntCC::NotEqual),
                    C::be => Some(IntCC::UnsignedLessThanOrEqual),
                    C::a => Some(IntCC::UnsignedGreaterThan),
                    C::l => Some(IntCC::SignedLessThan),
                    C::ge => Some(IntCC::SignedGreaterThanOrEqual),
                    C::le => Some(IntCC::SignedLessThanOrEqual),
                    C::g => Some(IntCC::SignedGreaterThan),
                    _ => None,
                };
                if let Some(icc) = icc {
                    return self.b.ins().icmp(icc, a, b);
                }
                if matches!(cc, C::s | C::ns) {
                    let s = self.msb(r);
                    return if cc == C::s { s } else { self.not(s) };
                }
            }
            Lazy::Logic { r, .. } => {
                let icc = match cc {
                    C::e | C::be => Some(IntCC::Equal),
                    C::ne | C::a => Some(IntCC::NotEqual),
                    C::s | C::l => Some(IntCC::SignedLessThan),
                    C::ns | C::ge => Some(IntCC::SignedGreaterThanOrEqual),
                    C::le => Some(IntCC::SignedLessThanOrEqual),
                    C::g => Some(IntCC::SignedGreaterThan),
                    _ => None,
                };
                if let Some(icc) = icc {
                    return self.b.ins().icmp_imm_s(icc, r, 0);
                }
                match cc {
                    C::o | C::b => return self.bool_const(false),
                    C::no | C::ae => return self.bool_const(true),
                    _ => {}
                }
            }
            _ => {}
        }
        let (flag, negate) = match cc {
            C::o => (Some(OF), false),
            C::no => (Some(OF), true),
            C::b => (Some(CF), false),
            C::ae => (Some(CF), true),
            C::e => (Some(ZF), false),
            C::ne => (Some(ZF), true),
            C::s => (Some(SF), false),
            C::ns => (Some(SF), true),
            C::p => (Some(PF), false),
            C::np => (Some(PF), true),
            _ => (None, false),
        };
        if let Some(bit) = flag {
            let v = self.flag(bit);
            return if negate { self.not(v) } else { v };
        }
        match cc {
            C::be | C::a => {
                let c = self.flag(CF);
                let z = self.flag(ZF);
                let v = self.b.ins().bor(c, z);
                if cc == C::a { self.not(v) } else { v }
            }
            C::l | C::ge => {
                let s = self.flag(SF);
                let o = self.flag(OF);
                let v = self.b.ins().bxor(s, o);
                if cc == C::ge { self.not(v) } else { v }
            }
            C::le | C::g => {
                let s = self.flag(SF);
                let o = self.flag(OF);
                let z = self.flag(ZF);
                let x = self.b.ins().bxor(s, o);
                let v = self.b.ins().bor(z, x);
                if cc == C::g { self.not(v) } else { v }
            }
            _ => self.bool_const(true),
        }
    }

    /// Store a lazy record where the run loop and the next block expect it: the record in
    /// `JitCtx`, or an exact RFLAGS in `CpuState` with `cc_op` = NONE.
    pub fn flush_lazy(&mut self, lazy: Lazy) {
        let ctx = self.ctx;
        let put = |t: &mut Self, v: Value, off: i32| {
            t.b.ins().store(trusted(), v, ctx, off);
        };
        match lazy {
            Lazy::Dynamic => {}
            Lazy::Exact(v) => {
                self.b.ins().store(trusted(), v, self.st, offsets::RFLAGS);
                let z = self.imm64(cc::NONE);
                put(self, z, offsets::ctx::CC_OP);
            }
            Lazy::PatchDyn { mask, bits } => {
                let base = self.call_flags_helper();
                let v = self.merge_bits(base, mask, bits);
                self.b.ins().store(trusted(), v, self.st, offsets::RFLAGS);
            }
            Lazy::Arith { op, size, a, b, r } => {
                let code = match op {
                    ArithOp::Add | ArithOp::Adc => cc::ADD,
                    ArithOp::Sub | ArithOp::Sbb => cc::SUB,
                } | size_code(size);
                let c = self.imm64(code);
                put(self, c, offsets::ctx::CC_OP);
                for (v, off) in [
                    (a, offsets::ctx::CC_A),
                    (b, offsets::ctx::CC_B),
                    (r, offsets::ctx::CC_R),
                ] {
                    let w = self.zext64(v, size);
                    put(self, w, off);
                }
            }
            Lazy::Logic { size, r } => {
                let c = self.imm64(cc::LOGIC | size_code(size));
                put(self, c, offsets::ctx::CC_OP);
                let w = self.zext64(r, size);
                put(self, w, offsets::ctx::CC_R);
            }
            Lazy::IncDec {
                dec,
                size,
                a,
                r,
                cf,
            } => {
                // A pending dynamic carry reads the old record: before anything is stored.
                let cf = match cf {
                    Some(cf) => cf,
                    None => self.dynamic_carry(),
                };
                let c = self.imm64(if dec { cc::DEC } else { cc::INC } | size_code(size));
                put(self, c, offsets::ctx::CC_OP);
                let wa = self.zext64(a, size);
                put(self, wa, offsets::ctx::CC_A);
                put(self, cf, offsets::ctx::CC_B);
                let wr = self.zext64(r, size);
                put(self, wr, offsets::ctx::CC_R);
            }
            Lazy::Shift { size, r, cf, of } => {
                let c = self.imm64(cc::SHIFT | size_code(size));
                put(self, c, offsets::ctx::CC_OP);
                put(self, cf, offsets::ctx::CC_A);
                put(self, of, offsets::ctx::CC_B);
                let wr = self.zext64(r, size);
                put(self, wr, offsets::ctx::CC_R);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_status_matches_interpreter_formulas() {
        assert_eq!(
            status(cc::SUB | 3, 5, 7, 5u64.wrapping_sub(7)),
            f::sub(5, 7, 5u64.wrapping_sub(7), 8)
        );
        assert_eq!(status(cc::INC, 0x7f, 1, 0x80) & CF, CF);
        assert_eq!(status(cc::INC, 0x7f, 0, 0x80) & (OF | SF), OF | SF);
        assert_eq!(status(cc::SHIFT | 2, 1, 0, 0), CF | ZF | PF);
    }
}
