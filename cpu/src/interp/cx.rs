//! The interpreter's execution context: register, memory and operand access with segmentation
//! checks (SDM Vol. 3A §3.4-§3.5, §5.3) on top of the MMU.

use iced_x86::{Instruction, OpKind, Register};

use super::mmu::{Access, Tlb, TlbEntry};
use crate::fault::Fault;
use crate::ram::GuestRam;
use crate::state::{CpuState, gpr, seg_attr, sreg};
use crate::vcpu::VmIo;

/// Per-run counters and logs that instruction handlers may touch.
#[derive(Debug)]
pub struct Misc {
    /// I/O instructions executed since the run loop last looked (it checks kicks after them).
    pub io_done: bool,
    /// Mnemonics that raised #UD because vx does not implement them, with counts.
    pub unimplemented: std::collections::BTreeMap<String, u64>,
    /// TSC origin: the guest TSC counts nanoseconds since this instant.
    pub tsc_origin: Option<std::time::Instant>,
    /// Physical page of the block being executed (u64::MAX: none); a store into it sets
    /// `code_written` so the block ends after the storing instruction.
    pub watch_page: u64,
    /// A store hit `watch_page`.
    pub code_written: bool,
}

impl Default for Misc {
    fn default() -> Self {
        Misc {
            io_done: false,
            unimplemented: Default::default(),
            tsc_origin: None,
            watch_page: u64::MAX,
            code_written: false,
        }
    }
}

/// Everything an instruction handler can see and change.
#[allow(missing_debug_implementations)]
pub struct Cx<'a> {
    /// Architectural state.
    pub st: &'a mut CpuState,
    /// Software TLB.
    pub tlb: &'a mut Tlb,
    /// Guest RAM.
    pub ram: &'a GuestRam,
    /// Port and MMIO accesses.
    pub io: &'a dyn VmIo,
    /// Counters and logs.
    pub misc: &'a mut Misc,
    /// Address size of the current instruction in bytes (2, 4, 8).
    pub asz: u32,
}

/// Where an operand lives.
#[derive(Clone, Copy, Debug)]
pub enum Loc {
    /// A general-purpose register; `high` selects AH/CH/DH/BH.
    Reg {
        /// Register number in encoding order.
        idx: u8,
        /// The legacy high-byte register of `idx`.
        high: bool,
    },
    /// Memory at a linear address (segmentation already checked).
    Mem(u64),
    /// An immediate.
    Imm(u64),
}

/// A resolved operand: location and size in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// Location.
    pub loc: Loc,
    /// Size in bytes (1, 2, 4, 8).
    pub size: u32,
}

/// Mask of the low `size` bytes.
#[inline]
pub fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// Sign-extend the low `size` bytes of `v`.
#[inline]
pub fn sext(v: u64, size: u32) -> u64 {
    let sh = 64 - size * 8;
    (((v << sh) as i64) >> sh) as u64
}

/// The general-purpose register number and high-byte flag of an iced register.
#[inline]
pub fn gpr_of(r: Register) -> (u8, bool, u32) {
    let n = r as u32;
    let size = r.size() as u32;
    if (Register::AH as u32..=Register::BH as u32).contains(&n) {
        ((n - Register::AH as u32) as u8, true, 1)
    } else {
        (r.full_register().number() as u8, false, size)
    }
}

/// Segment register index of an iced segment register.
#[inline]
pub fn sreg_of(r: Register) -> usize {
    (r as usize) - (Register::ES as usize)
}

impl Cx<'_> {
    // ---- registers -------------------------------------------------------------------------

    /// Read a general-purpose register of `size` bytes.
    #[inline]
    pub fn reg(&self, idx: u8, high: bool, size: u32) -> u64 {
        let v = self.st.gpr[idx as usize];
        if high {
            (v >> 8) & 0xff
        } else {
            v & mask(size)
        }
    }

    /// Write a general-purpose register of `size` bytes; 32-bit writes zero the upper half.
    #[inline]
    pub fn set_reg(&mut self, idx: u8, high: bool, size: u32, v: u64) {
        let r = &mut self.st.gpr[idx as usize];
        if high {
            *r = (*r & !0xff00) | ((v & 0xff) << 8);
        } else {
            match size {
                8 => *r = v,
                4 => *r = v & 0xffff_ffff,
                _ => *r = (*r & !mask(size)) | (v & mask(size)),
            }
        }
    }

    /// Read an iced general-purpose register.
    #[inline]
    pub fn get_gpr(&self, r: Register) -> u64 {
        let (idx, high, size) = gpr_of(r);
        self.reg(idx, high, size)
    }

    /// Write an iced general-purpose register.
    #[inline]
    pub fn set_gpr(&mut self, r: Register, v: u64) {
        let (idx, high, size) = gpr_of(r);
        self.set_reg(idx, high, size, v);
    }

    /// Current privilege level.
    #[inline]
    pub fn cpl(&self) -> u8 {
        self.st.cpl()
    }

    // ---- linear and physical memory -------------------------------------------------------

    #[inline(always)]
    fn translate(&mut self, lin: u64, access: Access, user: bool) -> Result<TlbEntry, Fault> {
        self.tlb.translate(self.st, self.ram, lin, access, user)
    }

    #[inline(always)]
    fn phys_read(&self, e: &TlbEntry, lin: u64, size: u32) -> u64 {
        let off = (lin & 0xfff) as usize;
        if !e.host.is_null() {
            // SAFETY: the TLB entry's host pointer covers the whole 4 KiB page and the caller
            // keeps the access inside it.
            return unsafe { GuestRam::read_host(e.host.add(off), size as usize) };
        }
        let mut buf = [0u8; 8];
        let gpa = e.phys | off as u64;
        if !self.ram.read(gpa, &mut buf[..size as usize]) {
            self.io.mmio_read(gpa, &mut buf[..size as usize]);
        }
        u64::from_le_bytes(buf)
    }

    #[inline(always)]
    fn phys_write(&mut self, e: &TlbEntry, lin: u64, size: u32, v: u64) {
        if e.phys == self.misc.watch_page {
            self.misc.code_written = true;
        }
        let off = (lin & 0xfff) as usize;
        if !e.host.is_null() {
            if !e.is_rom() {
                // SAFETY: as in phys_read; the page is writable RAM.
                unsafe { GuestRam::write_host(e.host.add(off), size as usize, v) };
            }
            return;
        }
        let gpa = e.phys | off as u64;
        let buf = v.to_le_bytes();
        if !self.ram.write(gpa, &buf[..size as usize]) {
            self.io.mmio_write(gpa, &buf[..size as usize]);
        }
    }

    /// Read `size` bytes at linear address `lin`.
    #[inline]
    pub fn read_lin(&mut self, lin: u64, size: u32, user: bool) -> Result<u64, Fault> {
        if (lin & 0xfff) + u64::from(size) <= 0x1000 {
            let e = self.translate(lin, Access::Read, user)?;
            return Ok(self.phys_read(&e, lin, size));
        }
        // Crossing a page: translate both pages before touching either.
        let second = (lin | 0xfff).wrapping_add(1);
        let e1 = self.translate(lin, Access::Read, user)?;
        let e2 = self.translate(second, Access::Read, user)?;
        let n1 = (second - lin) as u32;
        let lo = self.phys_read_bytes(&e1, lin, n1);
        let hi = self.phys_read_bytes(&e2, second, size - n1);
        Ok(lo | (hi << (n1 * 8)))
    }

    fn phys_read_bytes(&self, e: &TlbEntry, lin: u64, n: u32) -> u64 {
        let mut v = 0u64;
        for k in 0..n {
            v |= self.phys_read(e, lin + u64::from(k), 1) << (k * 8);
        }
        v
    }

    /// Write `size` bytes at linear address `lin`.
    #[inline]
    pub fn write_lin(&mut self, lin: u64, size: u32, v: u64, user: bool) -> Result<(), Fault> {
        if (lin & 0xfff) + u64::from(size) <= 0x1000 {
            let e = self.translate(lin, Access::Write, user)?;
            self.phys_write(&e, lin, size, v);
            return Ok(());
        }
        let second = (lin | 0xfff).wrapping_add(1);
        let e1 = self.translate(lin, Access::Write, user)?;
        let e2 = self.translate(second, Access::Write, user)?;
        let n1 = (second - lin) as u32;
        for k in 0..size {
            let (e, a) = if k < n1 {
                (&e1, lin + u64::from(k))
            } else {
                (&e2, second + u64::from(k - n1))
            };
            self.phys_write(e, a, 1, v >> (k * 8));
        }
        Ok(())
    }

    /// Check that `lin..lin+size` can be written, without writing (for read-modify-write and
    /// multi-part stores that must fault before changing anything).
    #[inline]
    pub fn probe_write(&mut self, lin: u64, size: u32) -> Result<(), Fault> {
        let user = self.cpl() == 3;
        self.translate(lin, Access::Write, user)?;
        let last = lin.wrapping_add(u64::from(size) - 1);
        if (last ^ lin) & !0xfff != 0 {
            // The second page's first byte is the faulting address if it faults.
            self.translate(last & !0xfff, Access::Write, user)?;
        }
        Ok(())
    }

    /// Fetch instruction bytes at linear `lin` into `buf` (stops at the end of the page
    /// unless `cross` is set); returns the count fetched.
    pub fn fetch(&mut self, lin: u64, buf: &mut [u8; 16], cross: bool) -> Result<usize, Fault> {
        let user = self.cpl() == 3;
        let in_page = (0x1000 - (lin & 0xfff)) as usize;
        let n = if cross { 15 } else { in_page.min(15) };
        let e = self.translate(lin, Access::Exec, user)?;
        let first = n.min(in_page);
        for (k, b) in buf.iter_mut().enumerate().take(first) {
            *b = self.phys_read(&e, lin + k as u64, 1) as u8;
        }
        if n > first {
            let second = lin + in_page as u64;
            let e2 = self.translate(second, Access::Exec, user)?;
            for (k, b) in buf.iter_mut().enumerate().take(n).skip(first) {
                *b = self.phys_read(&e2, lin + k as u64, 1) as u8;
            }
        }
        Ok(n)
    }

    /// Read with supervisor privilege (descriptor tables, TSS, IDT): implicit system accesses.
    pub fn read_sys(&mut self, lin: u64, size: u32) -> Result<u64, Fault> {
        self.read_lin(lin, size, false)
    }

    /// Write with supervisor privilege.
    pub fn write_sys(&mut self, lin: u64, size: u32, v: u64) -> Result<(), Fault> {
        self.write_lin(lin, size, v, false)
    }

    // ---- segmentation ----------------------------------------------------------------------

    /// Linear address of `seg:off` for an access of `size` bytes, with the segment's type and
    /// limit checks (or the canonical check in 64-bit mode).
    #[inline]
    pub fn linear(&self, seg: usize, off: u64, size: u32, write: bool) -> Result<u64, Fault> {
        let fault = if seg == sreg::SS {
            Fault::SS0
        } else {
            Fault::GP0
        };
        if self.st.in_64bit_mode() {
            let lin = if seg >= sreg::FS {
                off.wrapping_add(self.st.seg[seg].base)
            } else {
                off
            };
            let last = lin.wrapping_add(u64::from(size) - 1);
            if !canonical(lin) || !canonical(last) {
                return Err(fault);
            }
            return Ok(lin);
        }
        let s = &self.st.seg[seg];
        if self.st.protected_mode() && self.st.rflags & crate::state::flags::VM == 0 {
            if !s.usable() {
                return Err(fault);
            }
            let code = s.attr & seg_attr::CODE != 0;
            if write && (code || s.attr & seg_attr::RW == 0) {
                return Err(fault);
            }
            if !write && code && s.attr & seg_attr::RW == 0 {
                return Err(fault);
            }
        }
        let last = off.wrapping_add(u64::from(size) - 1);
        let limit = u64::from(s.limit);
        if s.attr & (seg_attr::CODE | seg_attr::DC) == seg_attr::DC {
            // Expand-down data segment: valid offsets are limit+1 ..= 0xffff or 0xffffffff.
            let upper = if s.attr & seg_attr::DB != 0 {
                0xffff_ffff
            } else {
                0xffff
            };
            if off <= limit || last > upper || last < off {
                return Err(fault);
            }
        } else if last > limit || last < off {
            return Err(fault);
        }
        Ok(s.base.wrapping_add(off) & 0xffff_ffff)
    }

    /// Read `size` bytes at `seg:off`.
    #[inline]
    pub fn read_mem(&mut self, seg: usize, off: u64, size: u32) -> Result<u64, Fault> {
        let lin = self.linear(seg, off, size, false)?;
        let user = self.cpl() == 3;
        self.read_lin(lin, size, user)
    }

    /// Write `size` bytes at `seg:off`.
    #[inline]
    pub fn write_mem(&mut self, seg: usize, off: u64, size: u32, v: u64) -> Result<(), Fault> {
        let lin = self.linear(seg, off, size, true)?;
        let user = self.cpl() == 3;
        self.write_lin(lin, size, v, user)
    }

    // ---- operands --------------------------------------------------------------------------

    /// Effective address (offset within the segment) of the instruction's memory operand.
    #[inline]
    pub fn ea(&self, i: &Instruction) -> u64 {
        let base = i.memory_base();
        let mut a = i.memory_displacement64();
        if base != Register::None {
            if base == Register::RIP {
                return a;
            }
            if base == Register::EIP {
                return a & 0xffff_ffff;
            }
            a = a.wrapping_add(self.get_gpr(base));
        }
        let index = i.memory_index();
        if index != Register::None {
            a = a.wrapping_add(
                self.get_gpr(index)
                    .wrapping_mul(u64::from(i.memory_index_scale())),
            );
        }
        a & mask(self.asz)
    }

    /// Segment register index of the memory operand.
    #[inline]
    pub fn mem_seg(&self, i: &Instruction) -> usize {
        sreg_of(i.memory_segment())
    }

    /// Resolve operand `n`; memory operands get their segmentation checked for a read, or for
    /// a write when `write` is set (read-modify-write destinations pass true).
    #[inline]
    pub fn op(&mut self, i: &Instruction, n: u32, write: bool) -> Result<Op, Fault> {
        match i.op_kind(n) {
            OpKind::Register => {
                let (idx, high, size) = gpr_of(i.op_register(n));
                Ok(Op {
                    loc: Loc::Reg { idx, high },
                    size,
                })
            }
            OpKind::Memory => {
                let size = i.memory_size().size() as u32;
                let off = self.ea(i);
                let lin = self.linear(self.mem_seg(i), off, size.max(1), write)?;
                if write {
                    // A destination (or read-modify-write) operand faults as a write, before
                    // anything is read or changed.
                    self.probe_write(lin, size.max(1))?;
                }
                Ok(Op {
                    loc: Loc::Mem(lin),
                    size,
                })
            }
            _ => Ok(Op {
                loc: Loc::Imm(i.immediate(n)),
                size: 0,
            }),
        }
    }

    /// Read an operand's value (zero-extended).
    #[inline]
    pub fn load(&mut self, op: &Op) -> Result<u64, Fault> {
        match op.loc {
            Loc::Reg { idx, high } => Ok(self.reg(idx, high, op.size)),
            Loc::Mem(lin) => {
                let user = self.cpl() == 3;
                self.read_lin(lin, op.size, user)
            }
            Loc::Imm(v) => Ok(v),
        }
    }

    /// Write an operand.
    #[inline]
    pub fn store(&mut self, op: &Op, v: u64) -> Result<(), Fault> {
        match op.loc {
            Loc::Reg { idx, high } => {
                self.set_reg(idx, high, op.size, v);
                Ok(())
            }
            Loc::Mem(lin) => {
                let user = self.cpl() == 3;
                self.write_lin(lin, op.size, v, user)
            }
            Loc::Imm(_) => Err(Fault::UD),
        }
    }

    /// Read operand `n` of `i`.
    #[inline]
    pub fn rd(&mut self, i: &Instruction, n: u32) -> Result<u64, Fault> {
        let op = self.op(i, n, false)?;
        self.load(&op)
    }

    /// Write operand `n` of `i`.
    #[inline]
    pub fn wr(&mut self, i: &Instruction, n: u32, v: u64) -> Result<(), Fault> {
        let op = self.op(i, n, true)?;
        self.store(&op, v)
    }

    /// Size in bytes of operand `n` (register or memory); immediates report 0.
    #[inline]
    pub fn op_size(&self, i: &Instruction, n: u32) -> u32 {
        match i.op_kind(n) {
            OpKind::Register => i.op_register(n).size() as u32,
            OpKind::Memory => i.memory_size().size() as u32,
            _ => 0,
        }
    }

    // ---- stack -----------------------------------------------------------------------------

    /// Stack pointer width in bytes.
    #[inline]
    pub fn stack_size(&self) -> u32 {
        self.st.stack_bitness() / 8
    }

    /// Push `size` bytes.
    pub fn push(&mut self, v: u64, size: u32) -> Result<(), Fault> {
        let ssz = self.stack_size();
        let sp = self.st.gpr[gpr::RSP].wrapping_sub(u64::from(size)) & mask(ssz);
        self.write_mem(sreg::SS, sp, size, v)?;
        self.set_reg(gpr::RSP as u8, false, ssz.max(2), sp);
        Ok(())
    }

    /// Pop `size` bytes.
    pub fn pop(&mut self, size: u32) -> Result<u64, Fault> {
        let ssz = self.stack_size();
        let sp = self.st.gpr[gpr::RSP] & mask(ssz);
        let v = self.read_mem(sreg::SS, sp, size)?;
        self.set_reg(gpr::RSP as u8, false, ssz, sp.wrapping_add(u64::from(size)));
        Ok(v)
    }

    /// Read the stack at `RSP + delta` without popping.
    pub fn peek(&mut self, delta: u64, size: u32) -> Result<u64, Fault> {
        let ssz = self.stack_size();
        let sp = self.st.gpr[gpr::RSP].wrapping_add(delta) & mask(ssz);
        self.read_mem(sreg::SS, sp, size)
    }

    /// Operand size of the current instruction's stack operations (2, 4 or 8 bytes).
    #[inline]
    pub fn stack_op_size(&self, i: &Instruction) -> u32 {
        i.stack_pointer_increment().unsigned_abs()
    }

    /// Set RIP to a branch target, truncated to the operand size of the branch.
    #[inline]
    pub fn jump(&mut self, target: u64, size: u32) {
        self.st.rip = target & mask(size);
    }

    /// Operand size of a near branch (16, 32 or 64-bit IP) in bytes.
    #[inline]
    pub fn branch_size(&self, i: &Instruction) -> u32 {
        match i.op_kind(0) {
            OpKind::NearBranch16 => 2,
            OpKind::NearBranch32 => 4,
            OpKind::NearBranch64 => 8,
            OpKind::Register => i.op_register(0).size() as u32,
            OpKind::Memory => i.memory_size().size() as u32,
            _ => self.st.code_bitness() / 8,
        }
    }
}

/// Whether `a` is a canonical 48-bit linear address.
#[inline]
pub fn canonical(a: u64) -> bool {
    let top = (a as i64) >> 47;
    top == 0 || top == -1
}
