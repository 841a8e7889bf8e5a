//! The ROM image builder: named pieces of 16-, 32- and 64-bit code and of data, laid out one
//! after another in a 64 or 128 KiB BIOS image that ends at 1 MiB (and, as with QEMU's
//! `-bios`, at 4 GiB). Pieces refer to each other by name; the builder assembles everything
//! repeatedly until every address is stable, then adds the RAM-init records and the reset
//! vector.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, Code, Instruction};

use super::layout;
use super::tables;
use crate::TestRom;

/// What every assembling function returns.
pub type R = Result<(), IcedError>;

/// Addresses of named pieces and exported labels. Addresses are linear (= physical below
/// 1 MiB): what flat 32/64-bit code uses; 16-bit code uses `off16`.
#[derive(Clone, Debug, Default)]
pub struct Syms {
    map: BTreeMap<String, u64>,
    rom_base: u64,
    final_pass: bool,
}

impl Syms {
    /// The linear address of symbol `name`.
    pub fn addr(&self, name: &str) -> u64 {
        match self.map.get(name) {
            Some(&a) => a,
            None if !self.final_pass => self.rom_base,
            None => panic!("ROM symbol '{name}' is not defined"),
        }
    }
    /// The offset of `name` from the ROM's base: its IP in 16-bit code, whose CS base is the
    /// ROM base (real mode CS = base >> 4, or the CODE16 descriptor).
    pub fn off16(&self, name: &str) -> u16 {
        let off = self.addr(name).wrapping_sub(self.rom_base);
        u16::try_from(off).unwrap_or_else(|_| {
            if self.final_pass {
                panic!("'{name}' is beyond 64 KiB of the ROM base")
            } else {
                0
            }
        })
    }
    /// Linear address of the ROM's first byte below 1 MiB.
    pub fn rom_base(&self) -> u64 {
        self.rom_base
    }
    /// The real-mode segment whose base is the ROM base.
    pub fn rom_segment(&self) -> u16 {
        (self.rom_base >> 4) as u16
    }
}

/// A code assembler that knows the ROM's symbols and can export its own labels.
pub struct Asm<'s> {
    a: CodeAssembler,
    syms: &'s Syms,
    exports: Vec<(String, CodeLabel)>,
    piece: String,
    locals: usize,
}

impl std::fmt::Debug for Asm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asm")
            .field("bitness", &self.a.bitness())
            .finish()
    }
}

impl Deref for Asm<'_> {
    type Target = CodeAssembler;
    fn deref(&self) -> &CodeAssembler {
        &self.a
    }
}

impl DerefMut for Asm<'_> {
    fn deref_mut(&mut self) -> &mut CodeAssembler {
        &mut self.a
    }
}

impl<'s> Asm<'s> {
    /// A fresh assembler of `bits` bits over `syms`.
    pub fn new(bits: u32, syms: &'s Syms, piece: &str) -> Asm<'s> {
        Asm {
            a: CodeAssembler::new(bits).expect("16, 32 or 64 bits"),
            syms,
            exports: Vec::new(),
            piece: piece.to_string(),
            locals: 0,
        }
    }
    /// A fresh symbol name, unique in the ROM (the same sequence on every layout pass), for
    /// code that needs a label's absolute address as an immediate: `export` it where it
    /// belongs and read it with `sym`.
    pub fn unique(&mut self, what: &str) -> String {
        self.locals += 1;
        format!("{}.{what}.{}", self.piece, self.locals)
    }
    /// The linear address of another piece or exported label.
    pub fn sym(&self, name: &str) -> u64 {
        self.syms.addr(name)
    }
    /// The 16-bit offset (from the ROM base) of another piece or exported label.
    pub fn sym16(&self, name: &str) -> u16 {
        self.syms.off16(name)
    }
    /// The ROM's symbols.
    pub fn syms(&self) -> &'s Syms {
        self.syms
    }
    /// Define `name` here, visible to every other piece.
    pub fn export(&mut self, name: &str) -> R {
        let mut l = self.a.create_label();
        self.a.set_label(&mut l)?;
        self.exports.push((name.to_string(), l));
        Ok(())
    }
    /// Make an existing label visible to every other piece as `name`.
    pub fn export_label(&mut self, name: &str, label: CodeLabel) {
        self.exports.push((name.to_string(), label));
    }
    /// Add one raw instruction (forms code_asm has no method for).
    pub fn raw(&mut self, i: Result<Instruction, IcedError>) -> R {
        let i = i?;
        self.a.add_instruction(i)
    }
    /// `jmp far sel:off` with a 32-bit offset, in any bitness (0x66 prefix in 16-bit code).
    pub fn jmp_far32(&mut self, sel: u16, off: u64) -> R {
        let off = u32::try_from(off).expect("far jump target below 4 GiB");
        self.raw(Instruction::with_far_branch(Code::Jmp_ptr1632, sel, off))
    }
    /// `retfq`: far return popping a 64-bit RIP and CS.
    pub fn retfq(&mut self) -> R {
        self.raw(Ok(Instruction::with(Code::Retfq)))
    }
    /// `jmp far sel:off` with a 16-bit offset.
    pub fn jmp_far16(&mut self, sel: u16, off: u16) -> R {
        self.raw(Instruction::with_far_branch(
            Code::Jmp_ptr1616,
            sel,
            u32::from(off),
        ))
    }
    /// Call a routine exported under `name`.
    pub fn call_sym(&mut self, name: &str) -> R {
        let target = match self.a.bitness() {
            16 => u64::from(self.sym16(name)),
            _ => self.sym(name),
        };
        self.a.call(target)
    }
    /// Emit a NUL-terminated string.
    pub fn asciz(&mut self, s: &str) -> R {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.a.db(&b)
    }

    fn finish(mut self, ip: u64) -> Result<Assembled, IcedError> {
        let r = self
            .a
            .assemble_options(ip, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let mut out = Vec::new();
        for (name, l) in &self.exports {
            out.push((name.clone(), r.label_ip(l)?));
        }
        Ok((r.inner.code_buffer, out))
    }
}

/// Machine code and the addresses of its exported labels.
type Assembled = (Vec<u8>, Vec<(String, u64)>);

/// Bytes computed from the final symbol addresses.
pub type LateBytes = Box<dyn Fn(&Syms) -> Vec<u8>>;

/// Something written into guest RAM at boot, before the ROM's own code runs in protected
/// mode (see `rt::ram_init32` for the record format).
pub enum RamInit {
    /// Copy these bytes.
    Bytes(u64, Vec<u8>),
    /// Zero this many bytes.
    Zero(u64, u32),
    /// `count` 8-byte entries: first, first + step, ...
    Run64 {
        addr: u64,
        count: u32,
        first: u64,
        step: u64,
    },
    /// `count` 4-byte entries: first, first + step, ...
    Run32 {
        addr: u64,
        count: u32,
        first: u32,
        step: u32,
    },
    /// Bytes computed from the final symbol addresses (IDT gates, pointers to code).
    Late(u64, LateBytes),
}

impl std::fmt::Debug for RamInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RamInit::Bytes(a, b) => write!(f, "Bytes({a:#x}, {} bytes)", b.len()),
            RamInit::Zero(a, n) => write!(f, "Zero({a:#x}, {n})"),
            RamInit::Run64 { addr, count, .. } => write!(f, "Run64({addr:#x} x{count})"),
            RamInit::Run32 { addr, count, .. } => write!(f, "Run32({addr:#x} x{count})"),
            RamInit::Late(a, _) => write!(f, "Late({a:#x})"),
        }
    }
}

/// Record kinds understood by `rt::ram_init32`.
pub mod record {
    /// Copy `count` bytes that follow.
    pub const COPY: u32 = 0;
    /// Zero `count` bytes.
    pub const ZERO: u32 = 1;
    /// `count` qwords from a u64 first value and u64 step that follow.
    pub const RUN64: u32 = 2;
    /// `count` dwords from a u32 first value and u32 step that follow.
    pub const RUN32: u32 = 3;
    /// End of the records.
    pub const END: u32 = 0xff;
}

fn encode_records(items: &[RamInit], syms: &Syms) -> Vec<u8> {
    let mut out = Vec::new();
    let head = |out: &mut Vec<u8>, addr: u64, count: u32, kind: u32| {
        out.extend_from_slice(&(addr as u32).to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    };
    for it in items {
        match it {
            RamInit::Bytes(addr, b) => {
                head(&mut out, *addr, b.len() as u32, record::COPY);
                out.extend_from_slice(b);
            }
            RamInit::Late(addr, f) => {
                let b = f(syms);
                head(&mut out, *addr, b.len() as u32, record::COPY);
                out.extend_from_slice(&b);
            }
            RamInit::Zero(addr, n) => head(&mut out, *addr, *n, record::ZERO),
            RamInit::Run64 {
                addr,
                count,
                first,
                step,
            } => {
                head(&mut out, *addr, *count, record::RUN64);
                out.extend_from_slice(&first.to_le_bytes());
                out.extend_from_slice(&step.to_le_bytes());
            }
            RamInit::Run32 {
                addr,
                count,
                first,
                step,
            } => {
                head(&mut out, *addr, *count, record::RUN32);
                out.extend_from_slice(&first.to_le_bytes());
                out.extend_from_slice(&step.to_le_bytes());
            }
        }
    }
    head(&mut out, 0, 0, record::END);
    out
}

type CodeFn = Box<dyn Fn(&mut Asm) -> R>;
type DataFn = Box<dyn Fn(&Syms) -> Vec<u8>>;

enum Body {
    Code(u32, CodeFn),
    Data(DataFn),
}

/// One named, aligned part of the image.
pub(crate) struct Piece {
    name: String,
    align: u64,
    body: Body,
}

impl Piece {
    /// A piece of `bits`-bit code.
    pub(crate) fn code(bits: u32, name: &str, f: impl Fn(&mut Asm) -> R + 'static) -> Piece {
        Piece {
            name: name.to_string(),
            align: 16,
            body: Body::Code(bits, Box::new(f)),
        }
    }
}

/// Builds one test ROM. The first piece must be 16-bit code: the reset vector jumps to it.
pub struct RomBuilder {
    name: String,
    pieces: Vec<Piece>,
    ram: Vec<RamInit>,
}

impl std::fmt::Debug for RomBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomBuilder")
            .field("name", &self.name)
            .field("pieces", &self.pieces.len())
            .finish()
    }
}

/// Image sizes tried, smallest first. Both are fully aliased below 1 MiB.
const IMAGE_SIZES: [usize; 2] = [64 * 1024, 128 * 1024];

impl RomBuilder {
    /// A ROM named `name` (its area/file, e.g. "paging/pages") with the standard runtime
    /// (serial printing, checks, RAM init) and the standard GDT already included.
    pub fn new(name: &str) -> RomBuilder {
        let mut rom = RomBuilder {
            name: name.to_string(),
            pieces: Vec::new(),
            ram: Vec::new(),
        };
        // The system area and the page-table area start out zeroed, whatever RAM held.
        rom.ram(RamInit::Zero(
            layout::GDT_ADDR,
            (layout::REAL_STACK_TOP - layout::GDT_ADDR) as u32,
        ));
        rom.ram(RamInit::Late(
            layout::GDT_ADDR,
            Box::new(|s| tables::standard_gdt(s.rom_base())),
        ));
        rom
    }

    /// Add a piece of `bits`-bit code named `name`, aligned to 16 bytes.
    pub fn code(
        &mut self,
        bits: u32,
        name: &str,
        f: impl Fn(&mut Asm) -> R + 'static,
    ) -> &mut Self {
        self.pieces.push(Piece {
            name: name.to_string(),
            align: 16,
            body: Body::Code(bits, Box::new(f)),
        });
        self
    }

    /// Add 16-bit code (real mode, or 16-bit protected mode through CODE16).
    pub fn code16(&mut self, name: &str, f: impl Fn(&mut Asm) -> R + 'static) -> &mut Self {
        self.code(16, name, f)
    }

    /// Add 32-bit code (protected mode or compatibility mode, flat segments).
    pub fn code32(&mut self, name: &str, f: impl Fn(&mut Asm) -> R + 'static) -> &mut Self {
        self.code(32, name, f)
    }

    /// Add 64-bit code.
    pub fn code64(&mut self, name: &str, f: impl Fn(&mut Asm) -> R + 'static) -> &mut Self {
        self.code(64, name, f)
    }

    /// Add data bytes that may depend on symbol addresses.
    pub fn data_fn(
        &mut self,
        name: &str,
        align: u64,
        f: impl Fn(&Syms) -> Vec<u8> + 'static,
    ) -> &mut Self {
        self.pieces.push(Piece {
            name: name.to_string(),
            align,
            body: Body::Data(Box::new(f)),
        });
        self
    }

    /// Add constant data bytes.
    pub fn data(&mut self, name: &str, align: u64, bytes: Vec<u8>) -> &mut Self {
        self.data_fn(name, align, move |_| bytes.clone())
    }

    /// Write something into RAM at boot (applied in order, after the standard zeroing).
    pub fn ram(&mut self, item: RamInit) -> &mut Self {
        self.ram.push(item);
        self
    }

    /// Lay the pieces out at `base` and assemble them; None if they do not fit in `size`.
    fn layout(&self, items: &[Piece], size: usize) -> Option<(Vec<u8>, Syms)> {
        let base = 0x10_0000 - size as u64;
        let mut syms = Syms {
            map: BTreeMap::new(),
            rom_base: base,
            final_pass: false,
        };
        for pass in 0..8 {
            let mut image = Vec::new();
            let mut map = BTreeMap::new();
            for p in items {
                let off = (image.len() as u64).div_ceil(p.align) * p.align;
                image.resize(off as usize, 0);
                let addr = base + off;
                map.insert(p.name.clone(), addr);
                let bytes = match &p.body {
                    Body::Data(f) => f(&syms),
                    Body::Code(bits, f) => {
                        let mut a = Asm::new(*bits, &syms, &p.name);
                        f(&mut a).unwrap_or_else(|e| {
                            panic!("{}: assembling {}: {e}", self.name, p.name)
                        });
                        let ip = if *bits == 16 { off } else { addr };
                        let (code, exports) = a
                            .finish(ip)
                            .unwrap_or_else(|e| panic!("{}: encoding {}: {e}", self.name, p.name));
                        for (n, ip) in exports {
                            let lin = if *bits == 16 { ip + base } else { ip };
                            if map.insert(n.clone(), lin).is_some() {
                                panic!("{}: symbol '{n}' defined twice", self.name);
                            }
                        }
                        code
                    }
                };
                image.extend_from_slice(&bytes);
            }
            if image.len() > size - 16 {
                return None;
            }
            let stable = map == syms.map;
            syms.map = map;
            if stable && syms.final_pass {
                return Some((image, syms));
            }
            if stable || pass >= 6 {
                syms.final_pass = true;
            }
        }
        panic!("{}: symbol addresses do not converge", self.name);
    }

    /// Assemble the ROM; `expected` is the serial output it must produce when it passes.
    pub fn build(self, expected: &str) -> TestRom {
        let RomBuilder {
            name,
            mut pieces,
            ram,
        } = self;
        let first_is_16 = matches!(
            pieces.first(),
            Some(Piece {
                body: Body::Code(16, _),
                ..
            })
        );
        assert!(
            first_is_16,
            "{name}: the first piece must be 16-bit code (the reset vector jumps to it)"
        );
        // The runtime and the small system tables go right after the entry piece, so that
        // everything 16-bit code needs is within 64 KiB of the ROM base; big data last.
        let rest = pieces.split_off(1);
        super::rt::add_runtime(&mut pieces);
        let small = |name: &str, f: DataFn| Piece {
            name: name.into(),
            align: 16,
            body: Body::Data(f),
        };
        pieces.push(small(
            "rom_gdt",
            Box::new(|s| tables::standard_gdt(s.rom_base())),
        ));
        pieces.push(small(
            "rom_gdtr",
            Box::new(|s| tables::pseudo_descriptor(layout::sel::GDT_END - 1, s.addr("rom_gdt"))),
        ));
        pieces.push(small(
            "ram_gdtr",
            Box::new(|_| tables::pseudo_descriptor(layout::sel::GDT_END - 1, layout::GDT_ADDR)),
        ));
        pieces.push(small(
            "idtr64",
            Box::new(|_| tables::pseudo_descriptor(256 * 16 - 1, layout::IDT_ADDR)),
        ));
        pieces.push(small(
            "idtr32",
            Box::new(|_| tables::pseudo_descriptor(256 * 8 - 1, layout::IDT_ADDR)),
        ));
        pieces.push(small(
            "ivt_real",
            Box::new(|_| tables::pseudo_descriptor(0x3ff, 0)),
        ));
        pieces.extend(rest);
        let ram = std::rc::Rc::new(ram);
        pieces.push(small(
            "ram_init",
            Box::new(move |s| encode_records(&ram, s)),
        ));
        let b = RomBuilder {
            name: name.clone(),
            pieces: Vec::new(),
            ram: Vec::new(),
        };
        for size in IMAGE_SIZES {
            if let Some((code, syms)) = b.layout(&pieces, size) {
                let mut image = vec![0xf4u8; size];
                image[..code.len()].copy_from_slice(&code);
                // Reset vector (F000:FFF0 = 16 bytes before the end): jmp far rom_seg:0.
                let first = syms.off16(&pieces[0].name);
                let seg = syms.rom_segment();
                let v = size - 16;
                image[v] = 0xea;
                image[v + 1..v + 3].copy_from_slice(&first.to_le_bytes());
                image[v + 3..v + 5].copy_from_slice(&seg.to_le_bytes());
                return TestRom {
                    name,
                    image,
                    expected: expected.to_string(),
                };
            }
        }
        panic!("{name}: does not fit in a 128 KiB ROM");
    }
}

/// Assemble a stand-alone piece of code at `ip` (no symbols), for tests and host snippets.
pub fn assemble(bits: u32, ip: u64, f: impl FnOnce(&mut CodeAssembler) -> R) -> Vec<u8> {
    let mut a = CodeAssembler::new(bits).expect("16, 32 or 64 bits");
    f(&mut a).expect("assemble snippet");
    a.assemble(ip).expect("encode snippet")
}
