//! Block decoding: the guest instructions of one block, decoded with iced-x86 from the 4 KiB
//! guest page holding RIP. A block never leaves its page; it ends at a control transfer,
//! before an instruction the JIT does not translate, or after `MAX_INSNS` instructions, and
//! it follows direct JMPs and CALLs (and the RETs of those CALLs) to targets in the same page.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

/// Most instructions in one block.
pub const MAX_INSNS: usize = 48;

/// How an instruction continues the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// As written.
    Normal,
    /// A direct JMP whose target (in the same page) follows it in the block.
    InlineJmp,
    /// A direct CALL whose callee (in the same page) follows it in the block.
    InlineCall,
    /// A RET matching an inlined CALL: the block goes on at `expected` when the popped
    /// address is that (else it leaves through the jump cache).
    InlineRet {
        /// The return address the inlined CALL pushed.
        expected: u64,
    },
}

/// One decoded guest instruction.
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    /// The instruction (decoded at its RIP).
    pub i: Instruction,
    /// Address size in bytes (4 or 8).
    pub asz: u32,
    /// How it continues the block.
    pub role: Role,
}

/// A decoded block.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The instructions to translate (may be empty: the first one is a fallback).
    pub insns: Vec<Insn>,
    /// The guest bytes the block covers, as (page offset, length) runs (at least one byte,
    /// even for a fallback).
    pub ranges: Vec<(u16, u16)>,
    /// The first instruction not in the block when the block ends without a control transfer.
    pub fallthrough: Option<u64>,
    /// The mnemonic of the instruction the block stops before, if it stopped for that reason.
    pub stopped_at: Option<Mnemonic>,
}

/// Most CALLs inlined into one block (nested).
const MAX_INLINE_DEPTH: usize = 4;

/// Decode a block at `rip` from `page`, the 4 KiB of guest memory holding it (at linear
/// address `rip & !0xfff`). The block follows direct JMPs and CALLs (and the RETs of those
/// CALLs) to targets in the same page that it has not decoded yet.
pub fn decode(page: &[u8], rip: u64) -> Plan {
    let base = rip & !0xfff;
    let mut pc = rip;
    let mut insns: Vec<Insn> = Vec::new();
    let mut seen: Vec<u64> = Vec::new();
    let mut returns: Vec<u64> = Vec::new();
    let mut stopped_at = None;
    let mut ends_in_branch = false;
    let mut first_len = 1;
    while insns.len() < MAX_INSNS {
        let off = (pc - base) as usize;
        let mut dec = Decoder::with_ip(64, &page[off..], pc, DecoderOptions::NONE);
        let i = dec.decode();
        if i.is_invalid() {
            break;
        }
        let asz = u32::from(cpu::interp::decode::address_size(
            &page[off..off + i.len()],
            64,
        ));
        // A bit string's address arithmetic wraps at the address size: 64-bit only.
        if !crate::lower::supported(&i) || (asz != 8 && crate::lower::bit_string(&i)) {
            stopped_at = Some(i.mnemonic());
            if insns.is_empty() {
                first_len = i.len();
            }
            break;
        }
        seen.push(pc);
        let target =
            (i.op_kind(0) == iced_x86::OpKind::NearBranch64).then(|| i.near_branch_target());
        let in_page = |t: u64| t & !0xfff == base;
        let fresh = |t: u64| t != rip && !seen.contains(&t);
        let role = match (i.mnemonic(), target) {
            (Mnemonic::Jmp, Some(t)) if in_page(t) && fresh(t) => Role::InlineJmp,
            (Mnemonic::Call, Some(t))
                if in_page(t) && fresh(t) && returns.len() < MAX_INLINE_DEPTH =>
            {
                Role::InlineCall
            }
            (Mnemonic::Ret, None) if i.op_count() == 0 && !returns.is_empty() => {
                let expected = returns.pop().expect("checked non-empty");
                Role::InlineRet { expected }
            }
            _ => Role::Normal,
        };
        insns.push(Insn { i, asz, role });
        pc = match role {
            Role::InlineJmp => target.expect("direct"),
            Role::InlineCall => {
                returns.push(i.next_ip());
                target.expect("direct")
            }
            Role::InlineRet { expected } => {
                if !in_page(expected) || !fresh(expected) {
                    // Continue only where the block can go on decoding.
                    insns.pop();
                    insns.push(Insn {
                        i,
                        asz,
                        role: Role::Normal,
                    });
                    ends_in_branch = true;
                    break;
                }
                expected
            }
            Role::Normal => {
                if crate::lower::ends_block(&i) {
                    ends_in_branch = true;
                    break;
                }
                i.next_ip()
            }
        };
        if pc & !0xfff != base {
            break;
        }
    }
    let fallthrough = if ends_in_branch { None } else { Some(pc) };
    let ranges = if insns.is_empty() {
        vec![(
            (rip & 0xfff) as u16,
            first_len.min(0x1000 - (rip & 0xfff) as usize) as u16,
        )]
    } else {
        ranges_of(&insns)
    };
    Plan {
        insns,
        ranges,
        fallthrough,
        stopped_at,
    }
}

/// The byte runs of `insns` (page offsets), sorted and merged.
fn ranges_of(insns: &[Insn]) -> Vec<(u16, u16)> {
    let mut v: Vec<(u16, u16)> = insns
        .iter()
        .map(|x| ((x.i.ip() & 0xfff) as u16, x.i.len() as u16))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (o, l) in v {
        match out.last_mut() {
            Some((po, pl)) if u32::from(*po) + u32::from(*pl) >= u32::from(o) => {
                let end = (u32::from(o) + u32::from(l)).max(u32::from(*po) + u32::from(*pl));
                *pl = (end - u32::from(*po)) as u16;
            }
            _ => out.push((o, l)),
        }
    }
    out
}
