//! Instructions the JIT leaves to the interpreter, and keeping translated code consistent with
//! the memory they write: before the step, the linear ranges the instruction will write are
//! worked out from its operands (iced-x86 `InstructionInfo`) and the registers; after it, the
//! blocks whose bytes those ranges overlap are invalidated. What cannot be worked out that way
//! (port I/O, which may start device DMA; exception and interrupt delivery, which pushes onto a
//! stack chosen by the IDT and TSS) bumps the code epoch instead, so every code page is
//! checked against its snapshot before its code runs again.

use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpAccess, Register};

use cpu::CpuState;
use cpu::interp::mmu::Access;
use cpu::state::gpr;

use cpu::VmIo;
use cpu::interp::StepResult;
use cpu::state::flags as fl;

use crate::ctx::JitCtx;
use crate::engine::{Engine, Next};

/// What a fallback instruction may write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Nothing in memory.
    Nothing,
    /// These linear ranges (start, length).
    Ranges(Vec<(u64, u64)>),
    /// A string store to ES:RDI of elements of this size: the range is known after the step
    /// from RDI before and after.
    StringDest(u64),
    /// Unknown (or a device may be involved): bump the code epoch.
    Unknown,
}

/// The value of `r` (any width) in `st` (64-bit mode: ES/CS/SS/DS have base 0).
fn reg_value(st: &CpuState, r: Register) -> Option<u64> {
    if r.is_segment_register() {
        let n = (r as usize) - (Register::ES as usize);
        return Some(if n >= cpu::state::sreg::FS {
            st.seg[n].base
        } else {
            0
        });
    }
    if !r.is_gpr() {
        return None;
    }
    let (n, high, size) = cpu::interp::cx::gpr_of(r);
    let v = st.gpr[n as usize];
    Some(if high {
        (v >> 8) & 0xff
    } else {
        v & cpu::interp::cx::mask(size)
    })
}

/// What `i`, about to run on the interpreter in 64-bit mode from state `st`, may write
/// (`f`: a reusable iced-x86 info factory).
pub fn writes(f: &mut InstructionInfoFactory, i: &Instruction, st: &CpuState) -> Writes {
    use Mnemonic::*;
    if i.is_invalid() {
        return Writes::Unknown;
    }
    let m = i.mnemonic();
    if matches!(m, In | Out | Insb | Insw | Insd | Outsb | Outsw | Outsd) {
        return Writes::Unknown;
    }
    let string_store = matches!(m, Movsb | Movsw | Movsq | Stosb | Stosw | Stosd | Stosq)
        || (m == Movsd && i.is_string_instruction());
    if string_store {
        // With 64-bit addressing (ES:RDI); a 32-bit RDI (0x67 prefix) is rare: unknown.
        let size = i.memory_size().size().max(1) as u64;
        let rdi = (0..i.op_count()).any(|k| i.op_kind(k) == iced_x86::OpKind::MemoryESRDI);
        return if rdi {
            Writes::StringDest(size)
        } else {
            Writes::Unknown
        };
    }
    let info = f.info(i);
    let mut ranges = Vec::new();
    for mem in info.used_memory() {
        if !matches!(
            mem.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            continue;
        }
        let size = mem.memory_size().size() as u64;
        let Some(lin) = mem.virtual_address(0, |r, _, _| reg_value(st, r)) else {
            return Writes::Unknown;
        };
        if size == 0 {
            return Writes::Unknown;
        }
        ranges.push((lin, size));
    }
    if ranges.is_empty() {
        Writes::Nothing
    } else {
        Writes::Ranges(ranges)
    }
}

impl Engine {
    /// Invalidate translated code in the linear range `lin..lin+len` (after a write the JIT
    /// did not see). Falls back to an epoch bump when a page cannot be translated.
    pub fn invalidate_linear(&mut self, ctx: &mut JitCtx, lin: u64, len: u64) {
        let mut a = lin;
        let end = lin.wrapping_add(len);
        let mut left = len;
        while left > 0 {
            let in_page = (0x1000 - (a & 0xfff)).min(left);
            match self.interp.translate(a, Access::Read) {
                Ok(e) if !e.host.is_null() => {
                    if self.cache.is_code_page(e.phys) {
                        self.cache
                            .invalidate_range(ctx, e.phys | (a & 0xfff), in_page);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    ctx.code_epoch += 1;
                    return;
                }
            }
            a = a.wrapping_add(in_page);
            left -= in_page;
            if a == end {
                break;
            }
        }
    }

    /// Run a block that is not hot yet on the interpreter, one instruction at a time with the
    /// same write tracking as fallbacks, up to its end (a control transfer, an instruction the
    /// JIT leaves to the interpreter, or `MAX_INSNS`).
    pub fn run_cold(&mut self, ctx: &mut JitCtx, io: &dyn VmIo) -> Next {
        self.sync_flags(ctx);
        for _ in 0..crate::translate::MAX_INSNS {
            let st = self.interp.state();
            if !st.in_64bit_mode()
                || st.rflags & (fl::TF | fl::RF) != 0
                || st.interrupt_shadow
                || st.halted
            {
                break;
            }
            let rip = st.rip;
            let insn = match self.interp.translate(rip, Access::Exec) {
                Ok(e) if !e.host.is_null() => {
                    let n = (0x1000 - (rip & 0xfff)).min(15) as usize;
                    let mut buf = [0u8; 15];
                    self.interp
                        .ram()
                        .read(e.phys | (rip & 0xfff), &mut buf[..n]);
                    iced_x86::Decoder::with_ip(64, &buf[..n], rip, iced_x86::DecoderOptions::NONE)
                        .decode()
                }
                // Let the interpreter raise the fetch fault (or read MMIO code).
                _ => Instruction::default(),
            };
            let st = self.interp.state();
            let w = if insn.is_invalid() {
                Writes::Unknown
            } else {
                writes(&mut self.info, &insn, st)
            };
            let rdi = st.gpr[gpr::RDI];
            let before = self.interp.instructions();
            let r = self.interp.step(io);
            let retired = self.interp.instructions() != before;
            self.after_fallback(ctx, w, rdi, retired);
            self.stats.cold_insns += 1;
            if r == StepResult::Shutdown {
                return Next::Exit(cpu::VcpuExit::Shutdown);
            }
            if !retired
                || insn.is_invalid()
                || crate::lower::ends_block(&insn)
                || !crate::lower::supported(&insn)
            {
                break;
            }
        }
        Next::Again
    }

    /// After a fallback step that may have written `w`: invalidate what it overwrote.
    /// `rdi_before` is RDI before the step, `retired` whether it completed (not an exception).
    pub fn after_fallback(&mut self, ctx: &mut JitCtx, w: Writes, rdi_before: u64, retired: bool) {
        if !retired {
            // An exception was delivered: the frame went onto a stack the IDT/TSS chose.
            ctx.code_epoch += 1;
            return;
        }
        match w {
            Writes::Nothing => {}
            Writes::Unknown => ctx.code_epoch += 1,
            Writes::Ranges(v) => {
                for (lin, len) in v {
                    self.invalidate_linear(ctx, lin, len);
                }
            }
            Writes::StringDest(size) => {
                let after = self.interp.state().gpr[gpr::RDI];
                let (lo, hi) = if after >= rdi_before {
                    (rdi_before, after)
                } else {
                    (after, rdi_before)
                };
                self.invalidate_linear(ctx, lo, hi - lo + size);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    fn decode(
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>,
    ) -> Instruction {
        let mut a = CodeAssembler::new(64).expect("asm");
        f(&mut a).expect("asm");
        let bytes = a.assemble(0x1000).expect("asm");
        iced_x86::Decoder::with_ip(64, &bytes, 0x1000, iced_x86::DecoderOptions::NONE).decode()
    }

    #[test]
    fn test_writes_of_common_fallbacks() {
        let mut st = CpuState::reset();
        st.gpr[gpr::RSP] = 0x8000;
        st.gpr[gpr::RBX] = 0x2000;
        st.gpr[gpr::RCX] = 3;
        assert_eq!(
            writes(
                &mut InstructionInfoFactory::new(),
                &decode(|a| a.bts(qword_ptr(rbx + 8), rcx)),
                &st
            ),
            Writes::Ranges(vec![(0x2008, 8)])
        );
        assert_eq!(
            writes(
                &mut InstructionInfoFactory::new(),
                &decode(|a| a.popfq()),
                &st
            ),
            Writes::Nothing
        );
        assert_eq!(
            writes(
                &mut InstructionInfoFactory::new(),
                &decode(|a| a.stosb()),
                &st
            ),
            Writes::StringDest(1)
        );
        assert_eq!(
            writes(
                &mut InstructionInfoFactory::new(),
                &decode(|a| a.out(dx, al)),
                &st
            ),
            Writes::Unknown
        );
        assert_eq!(
            writes(
                &mut InstructionInfoFactory::new(),
                &decode(|a| a.cpuid()),
                &st
            ),
            Writes::Nothing
        );
        match writes(
            &mut InstructionInfoFactory::new(),
            &decode(|a| a.enter(16u32, 0u32)),
            &st,
        ) {
            Writes::Ranges(v) => assert!(v.iter().any(|&(a, _)| a == 0x7ff8)),
            w => panic!("{w:?}"),
        }
    }
}
