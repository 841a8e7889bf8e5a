//! Shifts and rotates: SAL/SHL SHR SAR ROL ROR RCL RCR SHLD SHRD (SDM Vol. 2B "SAL/SAR/SHL/SHR",
//! Vol. 2B "RCL/RCR/ROL/ROR", "SHLD", "SHRD").
//!
//! Flags the SDM leaves undefined get fixed, documented values here: OF for counts above one
//! is computed with the count-of-one formula, AF is cleared, and CF for SHL/SHR counts at or
//! above the operand width is the bit a wider shifter would have produced.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::cx::{Cx, Loc, Op, mask, sext};
use super::flags;
use crate::fault::Fault;
use crate::state::flags::{AF, CF, OF, STATUS};

/// Execute one shift or rotate.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    match i.mnemonic() {
        Mnemonic::Shld | Mnemonic::Shrd => double(cx, i),
        _ => single(cx, i),
    }
}

/// The raw 8-bit count operand: CL or an immediate (the "by 1" forms decode as immediate 1).
fn count_of(cx: &Cx, i: &Instruction, n: u32) -> u32 {
    let c = match i.op_kind(n) {
        OpKind::Register => cx.get_gpr(i.op_register(n)),
        _ => i.immediate(n),
    };
    (c & 0xff) as u32
}

/// Count after the architectural masking: 6 bits for 64-bit operands, 5 bits otherwise.
pub fn masked_count(raw: u32, size: u32) -> u32 {
    raw & if size == 8 { 0x3f } else { 0x1f }
}

#[inline]
fn msb(v: u64, size: u32) -> u64 {
    (v >> (size * 8 - 1)) & 1
}

/// Rotate the `width`-bit value `v` left by `n` (0 < n < width <= 65).
fn rotl_width(v: u128, n: u32, width: u32) -> u128 {
    let m = (1u128 << width) - 1;
    ((v << n) | (v >> (width - n))) & m
}

/// A zero count changes no flag and no value, but a register destination is still written:
/// a 32-bit register gets its upper half cleared, as on silicon. Memory is left untouched.
fn count_zero(cx: &mut Cx, dst: &Op, a: u64) -> Result<(), Fault> {
    if let Loc::Reg { .. } = dst.loc {
        cx.store(dst, a)?;
    }
    Ok(())
}

fn single(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let m = i.mnemonic();
    let dst = cx.op(i, 0, true)?;
    let size = dst.size;
    let count = masked_count(count_of(cx, i, 1), size);
    let a = cx.load(&dst)? & mask(size);
    if count == 0 {
        return count_zero(cx, &dst, a);
    }
    let (r, flags) = shift_value(m, a, count, size, cx.st.rflags);
    cx.store(&dst, r)?;
    cx.st.rflags = flags;
    Ok(())
}

/// Result and new RFLAGS of shift/rotate `m` of the `size`-byte value `a` by the masked,
/// non-zero `count`, given the old RFLAGS.
#[inline]
pub fn shift_value(m: Mnemonic, a: u64, count: u32, size: u32, old: u64) -> (u64, u64) {
    use Mnemonic::*;
    let bits = size * 8;
    let cf_in = old & CF;
    let (r, f, which) = match m {
        Shl | Sal => {
            let r = if count >= 64 {
                0
            } else {
                (a << count) & mask(size)
            };
            let cf = if count <= bits {
                (a >> (bits - count)) & 1
            } else {
                0
            };
            let of = msb(r, size) ^ cf;
            (r, flags::szp(r, size) | (cf * CF) | (of * OF), STATUS)
        }
        Shr => {
            let r = if count >= bits { 0 } else { a >> count };
            let cf = if count > bits {
                0
            } else {
                (a >> (count - 1)) & 1
            };
            let of = msb(a, size);
            (r, flags::szp(r, size) | (cf * CF) | (of * OF), STATUS)
        }
        Sar => {
            let s = sext(a, size) as i64;
            let r = (s >> count.min(63)) as u64 & mask(size);
            let cf = ((s >> (count - 1).min(63)) & 1) as u64;
            (r, flags::szp(r, size) | (cf * CF), STATUS)
        }
        Rol | Ror => {
            let n = count % bits;
            let r = match (n, m) {
                (0, _) => a,
                (_, Rol) => rotl_width(u128::from(a), n, bits) as u64,
                _ => rotl_width(u128::from(a), bits - n, bits) as u64,
            };
            let (cf, of) = if m == Rol {
                let cf = r & 1;
                (cf, msb(r, size) ^ cf)
            } else {
                (msb(r, size), msb(r, size) ^ ((r >> (bits - 2)) & 1))
            };
            (r, (cf * CF) | (of * OF), CF | OF)
        }
        _ => {
            // RCL/RCR rotate the (bits+1)-bit value CF:operand; 8- and 16-bit forms reduce
            // the masked count modulo 9 or 17.
            let n = match size {
                1 => count % 9,
                2 => count % 17,
                _ => count,
            };
            let width = bits + 1;
            let v = (u128::from(cf_in) << bits) | u128::from(a);
            let rv = match (n, m) {
                (0, _) => v,
                (_, Rcl) => rotl_width(v, n, width),
                _ => rotl_width(v, width - n, width),
            };
            let r = (rv as u64) & mask(size);
            let cf = ((rv >> bits) & 1) as u64;
            let of = if m == Rcl {
                msb(r, size) ^ cf
            } else {
                msb(r, size) ^ ((r >> (bits - 2)) & 1)
            };
            (r, (cf * CF) | (of * OF), CF | OF)
        }
    };
    (r, flags::merge(old, f & !AF, which))
}

fn double(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let left = i.mnemonic() == Mnemonic::Shld;
    let dst = cx.op(i, 0, true)?;
    let size = dst.size;
    let bits = size * 8;
    let src = cx.get_gpr(i.op_register(1)) & mask(size);
    let count = masked_count(count_of(cx, i, 2), size);
    let a = cx.load(&dst)? & mask(size);
    if count == 0 {
        return count_zero(cx, &dst, a);
    }
    let (r, cf) = if size == 2 {
        // 16-bit forms take counts up to 31, beyond the operand width.
        double16(a, src, count, left)
    } else if left {
        let r = ((a << count) | (src >> (bits - count))) & mask(size);
        (r, (a >> (bits - count)) & 1)
    } else {
        let r = ((a >> count) | (src << (bits - count))) & mask(size);
        (r, (a >> (count - 1)) & 1)
    };
    let of = msb(r, size) ^ msb(a, size);
    let f = flags::szp(r, size) | (cf * CF) | (of * OF);
    cx.store(&dst, r)?;
    cx.st.rflags = flags::merge(cx.st.rflags, f, STATUS);
    Ok(())
}

/// 16-bit SHLD/SHRD for counts 1..31. Counts above 16 are undefined in the SDM; this follows
/// AMD Zen silicon (the vx reference host), which shifts the 48-bit value dest:src:src (SHLD)
/// or src:src:dest (SHRD), so the result is src rotated by count - 16. (Intel P6-family parts
/// use dest:src:dest instead.) The flags are undefined there too; vx derives them from the
/// same 48-bit shift.
fn double16(a: u64, src: u64, count: u32, left: bool) -> (u64, u64) {
    if left {
        let v = (a << 32) | (src << 16) | src;
        let r = ((v << count) >> 32) & 0xffff;
        let cf = (v >> (48 - count)) & 1;
        (r, cf)
    } else {
        let v = (src << 32) | (src << 16) | a;
        let r = (v >> count) & 0xffff;
        let cf = (v >> (count - 1)) & 1;
        (r, cf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rotl_width_rcl8() {
        // RCL AL=0x80, CF=0 by 1: CF takes bit 7, AL becomes 0.
        let v = 0x80u128;
        let r = rotl_width(v, 1, 9);
        assert_eq!(r, 0x100);
    }

    #[test]
    fn test_double16_beyond_16_rotates_src() {
        // Measured on AMD EPYC: shld ax,bx,17 with AX=0, BX=0x8001 gives 0x0003; shrd gives
        // 0xc000.
        assert_eq!(double16(0, 0x8001, 17, true).0, 0x0003);
        assert_eq!(double16(0, 0x8001, 17, false).0, 0xc000);
        assert_eq!(double16(0x1234, 0xabcd, 24, true).0, 0xcdab);
    }

    #[test]
    fn test_double16_in_range_matches_plain_shift() {
        for c in 1..=16u32 {
            let (r, _) = double16(0x1234, 0xabcd, c, true);
            let want = (((0x1234u64 << 16) | 0xabcd) << c >> 16) & 0xffff;
            assert_eq!(r, want, "shld count {c}");
            let (r, _) = double16(0x1234, 0xabcd, c, false);
            let want = (((0xabcdu64 << 16) | 0x1234) >> c) & 0xffff;
            assert_eq!(r, want, "shrd count {c}");
        }
    }
}
