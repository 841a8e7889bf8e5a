//! Bit instructions: BT BTS BTR BTC, BSF BSR, BSWAP (SDM Vol. 2A "BSF", "BSR", "BSWAP", "BT",
//! "BTC", "BTR", "BTS").
//!
//! BT* leave OF, SF, AF and PF undefined and ZF unchanged; vx leaves all of them unchanged.
//! BSF/BSR leave CF, OF, SF, AF and PF undefined; vx leaves them unchanged.
//! TZCNT and LZCNT (F3 0F BC/BD) execute as BSF and BSR, as on every processor without BMI1
//! and LZCNT (the F3 prefix is ignored there), because vx's CPUID advertises neither; compilers
//! emit TZCNT where the two agree for non-zero inputs (Linux does).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::cx::{Cx, Loc, Op, mask, sext};
use crate::fault::Fault;
use crate::state::flags::{CF, ZF};

/// Execute one bit instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Bsf | Bsr | Tzcnt | Lzcnt => scan(cx, i),
        Bswap => {
            let r = i.op_register(0);
            let size = r.size() as u32;
            let v = cx.get_gpr(r);
            let out = match size {
                8 => v.swap_bytes(),
                4 => u64::from((v as u32).swap_bytes()),
                // The 16-bit form is undefined in the SDM; vx follows the reference host (AMD
                // Zen, checked by tests/host_check.rs), which clears the low word and keeps
                // the rest of the register.
                _ => 0,
            };
            cx.set_gpr(r, out);
            Ok(())
        }
        _ => test_bit(cx, i),
    }
}

/// BT, BTS, BTR, BTC.
fn test_bit(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let m = i.mnemonic();
    let writes = m != Mnemonic::Bt;
    let size = cx.op_size(i, 0);
    let bits = u64::from(size * 8);
    let reg_offset = i.op_kind(1) == OpKind::Register;
    let raw = if reg_offset {
        cx.get_gpr(i.op_register(1))
    } else {
        i.immediate(1)
    };
    let dst = if reg_offset && i.op_kind(0) == OpKind::Memory {
        // A register bit offset is a signed value that can reach outside the operand: it
        // selects the operand-sized unit at ea + (offset >> log2(bits)) * size.
        let off = sext(raw, size) as i64;
        let unit = off >> bits.trailing_zeros();
        let ea = cx
            .ea(i)
            .wrapping_add((unit as u64).wrapping_mul(u64::from(size)))
            & mask(cx.asz);
        let lin = cx.linear(cx.mem_seg(i), ea, size, writes)?;
        Op {
            loc: Loc::Mem(lin),
            size,
        }
    } else {
        cx.op(i, 0, writes)?
    };
    let bit = raw & (bits - 1);
    let v = cx.load(&dst)?;
    let cf = (v >> bit) & 1;
    let out = match m {
        Mnemonic::Bts => v | (1 << bit),
        Mnemonic::Btr => v & !(1 << bit),
        Mnemonic::Btc => v ^ (1 << bit),
        _ => v,
    };
    if writes {
        cx.store(&dst, out)?;
    }
    cx.st.rflags = (cx.st.rflags & !CF) | (cf * CF);
    Ok(())
}

/// BSF and BSR: a zero source sets ZF and leaves the destination unchanged (all 64 bits),
/// as Intel and AMD parts do.
fn scan(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let size = cx.op_size(i, 0);
    let v = cx.rd(i, 1)? & mask(size);
    if v == 0 {
        cx.st.rflags |= ZF;
        return Ok(());
    }
    let idx = if matches!(i.mnemonic(), Mnemonic::Bsf | Mnemonic::Tzcnt) {
        v.trailing_zeros()
    } else {
        63 - v.leading_zeros()
    };
    cx.set_gpr(i.op_register(0), u64::from(idx));
    cx.st.rflags &= !ZF;
    Ok(())
}
