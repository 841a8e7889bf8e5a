//! The Linux x86 boot protocol, 64-bit entry (Linux Documentation/arch/x86/boot.rst, "64-bit
//! boot protocol", and zero-page.rst): parse and check a bzImage's setup header, place the
//! kernel, initrd and command line in guest RAM, fill `struct boot_params` (the "zero page")
//! with an e820 map of the machine's RAM, and build the processor state the protocol asks for.
//!
//! Guest memory used below 1 MiB (all inside the e820 "usable" range; Linux copies what it
//! needs before reusing it): the GDT at `GDT`, identity page tables from `PAGE_TABLES`, the
//! zero page at `ZERO_PAGE`, the command line at `CMDLINE`. The protected-mode kernel is
//! loaded at 1 MiB (where a boot loader puts a bzImage; the decompressor moves itself to
//! its preferred address), the initrd as high as the protocol allows below 4 GiB.

use cpu::state::{cr, gpr, msr, seg_attr, sreg};
use cpu::{CpuState, DescTable, GuestRam, Segment};
use machine::layout;

/// Guest-physical address of the boot GDT.
pub const GDT: u64 = 0x1000;
/// Guest-physical address of the zero page (`struct boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// First page of the identity page tables: PML4, PDPT, then four page directories mapping
/// the first 4 GiB with 2 MiB pages.
pub const PAGE_TABLES: u64 = 0x9000;
/// Guest-physical address of the command line.
pub const CMDLINE: u64 = 0x2_0000;
/// Room reserved for the command line (the kernel's own limit, `cmdline_size`, is smaller).
pub const CMDLINE_MAX: u64 = 0x1_0000;
/// Where the protected-mode kernel is loaded.
pub const KERNEL_LOAD: u64 = layout::HIGH_RAM_START;
/// Start of the area below 1 MiB that the e820 map reports reserved (the top of
/// conventional memory, where a BIOS keeps its extended data area).
pub const EBDA: u64 = 0x9_f000;
/// Oldest boot protocol vx accepts: 2.12 added `xloadflags` and its 64-bit entry flag.
pub const MIN_PROTOCOL: u16 = 0x020c;

/// Selector of the boot code segment the protocol requires (`__BOOT_CS`).
pub const BOOT_CS: u16 = 0x10;
/// Selector of the boot data segment the protocol requires (`__BOOT_DS`).
pub const BOOT_DS: u16 = 0x18;

// Offsets into the setup header and the zero page (zero-page.rst, boot.rst).
const OFF_ACPI_RSDP: usize = 0x070;
const OFF_EXT_RAMDISK_IMAGE: usize = 0x0c0;
const OFF_EXT_RAMDISK_SIZE: usize = 0x0c4;
const OFF_EXT_CMD_LINE_PTR: usize = 0x0c8;
const OFF_E820_ENTRIES: usize = 0x1e8;
const OFF_SETUP_SECTS: usize = 0x1f1;
const OFF_BOOT_FLAG: usize = 0x1fe;
const OFF_JUMP: usize = 0x200;
const OFF_HEADER: usize = 0x202;
const OFF_VERSION: usize = 0x206;
const OFF_TYPE_OF_LOADER: usize = 0x210;
const OFF_LOADFLAGS: usize = 0x211;
const OFF_RAMDISK_IMAGE: usize = 0x218;
const OFF_RAMDISK_SIZE: usize = 0x21c;
const OFF_CMD_LINE_PTR: usize = 0x228;
const OFF_INITRD_ADDR_MAX: usize = 0x22c;
const OFF_XLOADFLAGS: usize = 0x236;
const OFF_CMDLINE_SIZE: usize = 0x238;
const OFF_INIT_SIZE: usize = 0x260;
const OFF_E820_TABLE: usize = 0x2d0;
const E820_MAX: usize = 128;

/// loadflags bit 0: the protected-mode code is loaded at 1 MiB (a bzImage).
const LOADED_HIGH: u8 = 1 << 0;
/// xloadflags bit 0: the kernel has the 64-bit entry point at load address + 0x200.
const XLF_KERNEL_64: u16 = 1 << 0;

/// e820 address range types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved.
    Reserved = 2,
}

/// One e820 map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: E820Type,
}

/// Why a kernel, initrd or command line cannot be booted.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// A file cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a bzImage.
    #[error("{path} is not a Linux bzImage: {why}")]
    NotBzImage {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The boot protocol is too old or the kernel has no 64-bit entry point.
    #[error(
        "{path}: boot protocol {major}.{minor:02} {why}; vx boots kernels with protocol 2.12 or later and a 64-bit entry point"
    )]
    Unsupported {
        /// The file.
        path: String,
        /// Protocol major version.
        major: u16,
        /// Protocol minor version.
        minor: u16,
        /// What is missing.
        why: &'static str,
    },
    /// The kernel does not fit in guest memory below 4 GiB.
    #[error(
        "the kernel needs {need} MiB of guest memory from 1 MiB but the guest has {have} MiB there; raise --memory"
    )]
    KernelTooBig {
        /// MiB needed.
        need: u64,
        /// MiB available.
        have: u64,
    },
    /// The initrd does not fit between the kernel and the highest address it may use.
    #[error(
        "the initrd ({size} MiB) does not fit in guest memory between the kernel and {limit:#x}; raise --memory"
    )]
    InitrdTooBig {
        /// Initrd size in MiB (rounded up).
        size: u64,
        /// Highest address the initrd may end at.
        limit: u64,
    },
    /// The command line is longer than the kernel accepts.
    #[error("the kernel command line is {len} bytes; this kernel accepts at most {max}")]
    CmdlineTooLong {
        /// Length given.
        len: usize,
        /// The kernel's limit.
        max: u64,
    },
}

/// A bzImage whose setup header has been checked.
#[derive(Debug)]
pub struct BzImage {
    data: Vec<u8>,
    setup_len: usize,
    header_end: usize,
    version: u16,
}

fn le16(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([d[o], d[o + 1]])
}

fn le32(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]])
}

impl BzImage {
    /// Read and check `path`.
    pub fn read(path: &std::path::Path) -> Result<BzImage, LinuxError> {
        let name = path.display().to_string();
        let data = read_file("kernel", path)?;
        BzImage::parse(&name, data)
    }

    /// Check the setup header of `data` (the file named `name`, for messages).
    pub fn parse(name: &str, data: Vec<u8>) -> Result<BzImage, LinuxError> {
        let bad = |why: &str| LinuxError::NotBzImage {
            path: name.to_string(),
            why: why.to_string(),
        };
        if data.len() < 0x400 {
            return Err(bad("too short for a setup header"));
        }
        if le16(&data, OFF_BOOT_FLAG) != 0xaa55 {
            return Err(bad("no boot sector signature 0xAA55 at offset 0x1fe"));
        }
        if &data[OFF_HEADER..OFF_HEADER + 4] != b"HdrS" {
            return Err(bad("no \"HdrS\" setup header at offset 0x202"));
        }
        let version = le16(&data, OFF_VERSION);
        let unsupported = |why| LinuxError::Unsupported {
            path: name.to_string(),
            major: version >> 8,
            minor: version & 0xff,
            why,
        };
        if version < MIN_PROTOCOL {
            return Err(unsupported("is too old"));
        }
        if data[OFF_LOADFLAGS] & LOADED_HIGH == 0 {
            return Err(bad("a zImage (loaded below 1 MiB), not a bzImage"));
        }
        if le16(&data, OFF_XLOADFLAGS) & XLF_KERNEL_64 == 0 {
            return Err(unsupported("has no 64-bit entry point (a 32-bit kernel)"));
        }
        let sects = match data[OFF_SETUP_SECTS] {
            0 => 4,
            n => usize::from(n),
        };
        let setup_len = (sects + 1) * 512;
        if setup_len >= data.len() {
            return Err(bad("the setup code covers the whole file"));
        }
        // The header ends at 0x202 plus the jump's 8-bit displacement.
        let header_end = (OFF_HEADER + usize::from(data[OFF_JUMP + 1])).min(OFF_E820_TABLE);
        Ok(BzImage {
            data,
            setup_len,
            header_end,
            version,
        })
    }

    /// The boot protocol version (0x020f for 2.15).
    pub fn protocol(&self) -> u16 {
        self.version
    }

    /// The protected-mode kernel (everything after the setup sectors).
    pub fn payload(&self) -> &[u8] {
        &self.data[self.setup_len..]
    }

    /// Bytes of memory the kernel needs from its load address while it decompresses and
    /// starts (`init_size`), at least the payload's size.
    pub fn init_size(&self) -> u64 {
        u64::from(le32(&self.data, OFF_INIT_SIZE)).max(self.payload().len() as u64)
    }

    fn initrd_addr_max(&self) -> u64 {
        u64::from(le32(&self.data, OFF_INITRD_ADDR_MAX))
    }

    fn cmdline_size(&self) -> u64 {
        u64::from(le32(&self.data, OFF_CMDLINE_SIZE))
    }
}

fn read_file(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, LinuxError> {
    let err = |source| LinuxError::Read {
        what,
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a directory",
        )));
    }
    std::fs::read(path).map_err(err)
}

/// Read an initrd file.
pub fn read_initrd(path: &std::path::Path) -> Result<Vec<u8>, LinuxError> {
    read_file("initrd", path)
}

/// The e820 map of `ram`: every writable RAM region, except that the top of conventional
/// memory (`EBDA`..640 KiB) and the BIOS area 0xE0000..1 MiB (where the ACPI tables are)
/// are reported reserved, and 0xA0000..0xE0000 (VGA window, option ROMs) not at all.
pub fn e820_map(ram: &GuestRam) -> Vec<E820Entry> {
    let mut map = Vec::new();
    let mut ram_range = |addr: u64, end: u64| {
        if end > addr {
            map.push(E820Entry {
                addr,
                size: end - addr,
                kind: E820Type::Ram,
            });
        }
    };
    for r in ram.regions().iter().filter(|r| !r.readonly) {
        let end = r.gpa + r.len;
        if r.gpa < layout::HIGH_RAM_START {
            ram_range(r.gpa, end.min(EBDA));
        } else {
            ram_range(r.gpa, end);
        }
    }
    map.push(E820Entry {
        addr: EBDA,
        size: layout::LOW_RAM_END - EBDA,
        kind: E820Type::Reserved,
    });
    map.push(E820Entry {
        addr: layout::ACPI_TABLES,
        size: layout::HIGH_RAM_START - layout::ACPI_TABLES,
        kind: E820Type::Reserved,
    });
    map.sort_by_key(|e| e.addr);
    map
}

/// Highest end address of RAM that is contiguous from 1 MiB.
fn high_ram_end(ram: &GuestRam) -> u64 {
    ram.regions()
        .iter()
        .find(|r| !r.readonly && r.gpa == layout::HIGH_RAM_START)
        .map(|r| r.gpa + r.len)
        .unwrap_or(layout::HIGH_RAM_START)
}

/// What `load` placed where (for --stats/tracing and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxLayout {
    /// Kernel load address.
    pub kernel: u64,
    /// Initrd address and size.
    pub initrd: Option<(u64, u64)>,
    /// Zero page address.
    pub zero_page: u64,
    /// The e820 map handed to the kernel.
    pub e820: Vec<E820Entry>,
}

/// Place `image`, `initrd` and `cmdline` in `ram`, fill the zero page (with `acpi_rsdp` if
/// the machine has ACPI tables) and return the processor state for the 64-bit entry.
pub fn load(
    ram: &GuestRam,
    image: &BzImage,
    initrd: Option<&[u8]>,
    cmdline: &str,
    acpi_rsdp: Option<u64>,
) -> Result<(CpuState, LinuxLayout), LinuxError> {
    let top = high_ram_end(ram);
    let kernel_end = KERNEL_LOAD + image.init_size();
    if kernel_end > top {
        return Err(LinuxError::KernelTooBig {
            need: (kernel_end - KERNEL_LOAD).div_ceil(1 << 20),
            have: (top - KERNEL_LOAD) >> 20,
        });
    }
    let max_cmdline = image.cmdline_size().min(CMDLINE_MAX - 1);
    if cmdline.len() as u64 > max_cmdline {
        return Err(LinuxError::CmdlineTooLong {
            len: cmdline.len(),
            max: max_cmdline,
        });
    }

    let mut zp = vec![0u8; 4096];
    // The setup header as the kernel file has it, then the boot loader's fields.
    zp[OFF_SETUP_SECTS..image.header_end]
        .copy_from_slice(&image.data[OFF_SETUP_SECTS..image.header_end]);
    zp[OFF_TYPE_OF_LOADER] = 0xff; // no registered boot loader ID
    zp[OFF_CMD_LINE_PTR..OFF_CMD_LINE_PTR + 4].copy_from_slice(&(CMDLINE as u32).to_le_bytes());
    zp[OFF_EXT_CMD_LINE_PTR..OFF_EXT_CMD_LINE_PTR + 4].copy_from_slice(&0u32.to_le_bytes());
    if let Some(rsdp) = acpi_rsdp {
        zp[OFF_ACPI_RSDP..OFF_ACPI_RSDP + 8].copy_from_slice(&rsdp.to_le_bytes());
    }

    let mut placed_initrd = None;
    if let Some(rd) = initrd {
        let size = rd.len() as u64;
        let limit = top.min(image.initrd_addr_max().saturating_add(1));
        let too_big = || LinuxError::InitrdTooBig {
            size: size.div_ceil(1 << 20),
            limit,
        };
        let addr = limit.checked_sub(size).ok_or_else(too_big)? & !0xfff;
        if addr < kernel_end.next_multiple_of(0x1000) {
            return Err(too_big());
        }
        ram.load(addr, rd);
        zp[OFF_RAMDISK_IMAGE..OFF_RAMDISK_IMAGE + 4].copy_from_slice(&(addr as u32).to_le_bytes());
        zp[OFF_RAMDISK_SIZE..OFF_RAMDISK_SIZE + 4].copy_from_slice(&(size as u32).to_le_bytes());
        zp[OFF_EXT_RAMDISK_IMAGE..OFF_EXT_RAMDISK_IMAGE + 4]
            .copy_from_slice(&((addr >> 32) as u32).to_le_bytes());
        zp[OFF_EXT_RAMDISK_SIZE..OFF_EXT_RAMDISK_SIZE + 4]
            .copy_from_slice(&((size >> 32) as u32).to_le_bytes());
        placed_initrd = Some((addr, size));
    }

    let e820 = e820_map(ram);
    zp[OFF_E820_ENTRIES] = e820.len().min(E820_MAX) as u8;
    for (k, e) in e820.iter().take(E820_MAX).enumerate() {
        let o = OFF_E820_TABLE + 20 * k;
        zp[o..o + 8].copy_from_slice(&e.addr.to_le_bytes());
        zp[o + 8..o + 16].copy_from_slice(&e.size.to_le_bytes());
        zp[o + 16..o + 20].copy_from_slice(&(e.kind as u32).to_le_bytes());
    }

    ram.load(KERNEL_LOAD, image.payload());
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    ram.load(CMDLINE, &line);
    ram.load(ZERO_PAGE, &zp);
    write_gdt(ram);
    write_page_tables(ram);

    let layout = LinuxLayout {
        kernel: KERNEL_LOAD,
        initrd: placed_initrd,
        zero_page: ZERO_PAGE,
        e820,
    };
    Ok((entry_state(), layout))
}

/// A GDT with the protocol's flat 64-bit code segment at `BOOT_CS` and flat data segment at
/// `BOOT_DS`.
fn write_gdt(ram: &GuestRam) {
    let entries: [u64; 4] = [0, 0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    ram.load(GDT, &bytes);
}

/// Identity map of the first 4 GiB with 2 MiB pages: PML4, one PDPT, four directories.
fn write_page_tables(ram: &GuestRam) {
    const PRESENT_RW: u64 = 0x3;
    const LARGE: u64 = 0x80;
    let pml4 = PAGE_TABLES;
    let pdpt = PAGE_TABLES + 0x1000;
    let pd = PAGE_TABLES + 0x2000;
    ram.load(pml4, &(pdpt | PRESENT_RW).to_le_bytes());
    let mut dirs = Vec::with_capacity(4 * 8);
    for k in 0..4u64 {
        dirs.extend_from_slice(&((pd + k * 0x1000) | PRESENT_RW).to_le_bytes());
    }
    ram.load(pdpt, &dirs);
    let mut entries = Vec::with_capacity(4 * 4096);
    for k in 0..(4 * 512u64) {
        entries.extend_from_slice(&((k << 21) | PRESENT_RW | LARGE).to_le_bytes());
    }
    ram.load(pd, &entries);
}

/// The processor state of the 64-bit entry: long mode, paging on with the identity map,
/// CS = `BOOT_CS`, the data segments = `BOOT_DS`, interrupts off, RSI = the zero page.
fn entry_state() -> CpuState {
    let mut s = CpuState::reset();
    s.cr0 = cr::CR0_PE | cr::CR0_MP | cr::CR0_ET | cr::CR0_NE | cr::CR0_PG;
    s.cr3 = PAGE_TABLES;
    s.cr4 = cr::CR4_PAE;
    s.efer = msr::EFER_LME | msr::EFER_LMA;
    s.gdtr = DescTable {
        base: GDT,
        limit: 4 * 8 - 1,
    };
    s.idtr = DescTable { base: 0, limit: 0 };
    s.seg[sreg::CS] = Segment::flat_code(BOOT_CS, 0, true);
    for r in [sreg::DS, sreg::ES, sreg::SS, sreg::FS, sreg::GS] {
        s.seg[r] = Segment::flat_data(BOOT_DS, 0);
    }
    s.tr = Segment {
        selector: 0,
        base: 0,
        limit: 0x67,
        attr: seg_attr::P | 0xb, // busy 64-bit TSS
    };
    // What a BIOS leaves in the MTRRs: enabled, default type write-back, no ranges (vx has
    // no caches; Linux skips PAT set-up when MTRRs are disabled).
    s.msr.mtrr_def_type = (1 << 11) | 6;
    s.rflags = 2;
    s.rip = KERNEL_LOAD + 0x200;
    s.gpr[gpr::RSI] = ZERO_PAGE;
    s.gpr[gpr::RSP] = ZERO_PAGE;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::memory::GuestMemory;

    /// A synthetic bzImage: 4 setup sectors + `payload` bytes, protocol `version`.
    fn image(version: u16, xload: u16, payload: usize, init_size: u32) -> Vec<u8> {
        let mut d = vec![0u8; 5 * 512 + payload];
        d[OFF_SETUP_SECTS] = 4;
        d[OFF_BOOT_FLAG..OFF_BOOT_FLAG + 2].copy_from_slice(&0xaa55u16.to_le_bytes());
        d[OFF_JUMP] = 0xeb;
        d[OFF_JUMP + 1] = 0x6a; // header ends at 0x26c
        d[OFF_HEADER..OFF_HEADER + 4].copy_from_slice(b"HdrS");
        d[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&version.to_le_bytes());
        d[OFF_LOADFLAGS] = LOADED_HIGH;
        d[OFF_INITRD_ADDR_MAX..OFF_INITRD_ADDR_MAX + 4]
            .copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        d[OFF_XLOADFLAGS..OFF_XLOADFLAGS + 2].copy_from_slice(&xload.to_le_bytes());
        d[OFF_CMDLINE_SIZE..OFF_CMDLINE_SIZE + 4].copy_from_slice(&2047u32.to_le_bytes());
        d[OFF_INIT_SIZE..OFF_INIT_SIZE + 4].copy_from_slice(&init_size.to_le_bytes());
        for (k, b) in d[5 * 512..].iter_mut().enumerate() {
            *b = k as u8;
        }
        d
    }

    fn ok_image() -> BzImage {
        BzImage::parse("k", image(0x020f, 1, 4096, 0x10_0000)).expect("valid image")
    }

    fn read_u32(ram: &GuestRam, gpa: u64) -> u32 {
        let mut b = [0u8; 4];
        assert!(ram.read(gpa, &mut b));
        u32::from_le_bytes(b)
    }

    #[test]
    fn test_parse_rejects_what_is_not_a_64_bit_bzimage() {
        let err = |d: Vec<u8>| {
            BzImage::parse("f", d)
                .expect_err("must be rejected")
                .to_string()
        };
        assert!(err(vec![0; 100]).contains("too short"));
        let mut d = image(0x020f, 1, 16, 0);
        d[OFF_BOOT_FLAG] = 0;
        assert!(err(d).contains("0xAA55"));
        let mut d = image(0x020f, 1, 16, 0);
        d[OFF_HEADER] = b'X';
        assert!(err(d).contains("HdrS"));
        let e = err(image(0x020a, 1, 16, 0));
        assert!(e.contains("protocol 2.10 is too old"), "{e}");
        let e = err(image(0x020f, 0, 16, 0));
        assert!(e.contains("no 64-bit entry point"), "{e}");
        let mut d = image(0x020f, 1, 16, 0);
        d[OFF_LOADFLAGS] = 0;
        assert!(err(d).contains("zImage"));
    }

    #[test]
    fn test_load_places_kernel_initrd_cmdline_and_zero_page() {
        let mem = GuestMemory::new(64 << 20, None).expect("memory");
        let ram = mem.ram();
        let img = ok_image();
        let rd = vec![0x5au8; 10_000];
        let (st, placed) =
            load(ram, &img, Some(&rd), "console=ttyS0", Some(0xe0000)).expect("load");
        // Entry state: 64-bit code at load + 0x200, RSI = zero page, paging on.
        assert_eq!(st.rip, KERNEL_LOAD + 0x200);
        assert_eq!(st.gpr[gpr::RSI], ZERO_PAGE);
        assert_eq!(st.seg[sreg::CS].selector, BOOT_CS);
        assert_eq!(st.seg[sreg::SS].selector, BOOT_DS);
        assert_ne!(st.cr0 & cr::CR0_PG, 0);
        assert_ne!(st.efer & msr::EFER_LMA, 0);
        assert_eq!(st.rflags & (1 << 9), 0, "interrupts off");
        // The payload is at 1 MiB.
        let mut b = [0u8; 4];
        assert!(ram.read(KERNEL_LOAD + 1, &mut b));
        assert_eq!(b, [1, 2, 3, 4]);
        // The initrd is page-aligned, below 64 MiB and above the kernel's init_size.
        let (addr, size) = placed.initrd.expect("initrd placed");
        assert_eq!(size, 10_000);
        assert_eq!(addr % 4096, 0);
        assert!(addr >= KERNEL_LOAD + 0x10_0000 && addr + size <= 64 << 20);
        assert_eq!(
            read_u32(ram, ZERO_PAGE + OFF_RAMDISK_IMAGE as u64),
            addr as u32
        );
        assert_eq!(read_u32(ram, ZERO_PAGE + OFF_RAMDISK_SIZE as u64), 10_000);
        assert_eq!(
            read_u32(ram, ZERO_PAGE + OFF_CMD_LINE_PTR as u64),
            CMDLINE as u32
        );
        let mut line = [0u8; 14];
        assert!(ram.read(CMDLINE, &mut line));
        assert_eq!(&line, b"console=ttyS0\0");
        assert_eq!(read_u32(ram, ZERO_PAGE + OFF_ACPI_RSDP as u64), 0xe0000);
        let mut hdr = [0u8; 4];
        assert!(ram.read(ZERO_PAGE + OFF_HEADER as u64, &mut hdr));
        assert_eq!(&hdr, b"HdrS");
        let mut t = [0u8; 1];
        assert!(ram.read(ZERO_PAGE + OFF_TYPE_OF_LOADER as u64, &mut t));
        assert_eq!(t[0], 0xff);
        // e820 in the zero page matches the returned map.
        assert!(ram.read(ZERO_PAGE + OFF_E820_ENTRIES as u64, &mut t));
        assert_eq!(usize::from(t[0]), placed.e820.len());
        // The identity map covers the kernel: PML4[0] -> PDPT, PD entry for 2 MiB.
        let pml4 = read_u32(ram, PAGE_TABLES);
        assert_eq!(u64::from(pml4) & !0xfff, PAGE_TABLES + 0x1000);
        assert_eq!(read_u32(ram, PAGE_TABLES + 0x2000 + 8), (1 << 21) | 0x83);
    }

    #[test]
    fn test_e820_matches_the_memory_map() {
        let mem = GuestMemory::new(64 << 20, None).expect("memory");
        let map = e820_map(mem.ram());
        let ram: Vec<(u64, u64)> = map
            .iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| (e.addr, e.addr + e.size))
            .collect();
        assert_eq!(ram, vec![(0, EBDA), (0x10_0000, 64 << 20)]);
        assert!(map.iter().any(|e| e.kind == E820Type::Reserved
            && e.addr == layout::ACPI_TABLES
            && e.addr + e.size == layout::HIGH_RAM_START));
        // Sorted and non-overlapping.
        for w in map.windows(2) {
            assert!(w[0].addr + w[0].size <= w[1].addr);
        }
    }

    #[test]
    fn test_load_rejects_what_does_not_fit() {
        let mem = GuestMemory::new(8 << 20, None).expect("memory");
        let big = BzImage::parse("k", image(0x020f, 1, 4096, 16 << 20)).expect("valid");
        let e = load(mem.ram(), &big, None, "", None).expect_err("too big");
        assert!(
            matches!(e, LinuxError::KernelTooBig { need: 16, have: 7 }),
            "{e}"
        );
        let img = ok_image();
        let rd = vec![0u8; 7 << 20];
        let e = load(mem.ram(), &img, Some(&rd), "", None).expect_err("initrd too big");
        assert!(matches!(e, LinuxError::InitrdTooBig { .. }), "{e}");
        let long = "x".repeat(2048);
        let e = load(mem.ram(), &img, None, &long, None).expect_err("cmdline too long");
        assert!(
            matches!(
                e,
                LinuxError::CmdlineTooLong {
                    len: 2048,
                    max: 2047
                }
            ),
            "{e}"
        );
    }
}
