//! Self-checking guest programs for vx, assembled in Rust with iced-x86 `code_asm`. Each ROM
//! is a BIOS image (as for QEMU `-bios`) that prints to COM1 and writes its verdict to the
//! debug-exit port 0xf4: 0 when every check passed (vx exits with status 1).
//!
//! `all()` lists every ROM with the serial output it must produce, so the integration tests
//! and every engine (interpreter, JIT, KVM) run the same list; `demo()` is the guest `vx`
//! runs when given no arguments.

pub mod asm;
pub mod check;
mod demo;
pub mod exceptions;
pub mod families;
pub mod host;
pub mod modes;
pub mod paging;
pub mod privilege;
pub mod rng;

/// One test ROM: its name (area/file), the BIOS image and the exact serial output it must
/// print (with `\n` line ends; the guest sends `\r\n`).
#[derive(Clone, Debug)]
pub struct TestRom {
    /// `area/name`, matching `test-roms/src/<area>/<name>.rs`.
    pub name: String,
    /// The BIOS image (64 or 128 KiB, reset vector 16 bytes before its end).
    pub image: Vec<u8>,
    /// Expected COM1 output, `\n` line ends.
    pub expected: String,
}

impl TestRom {
    /// The expected output as the guest sends it (`\r\n` line ends).
    pub fn expected_serial(&self) -> String {
        self.expected.replace('\n', "\r\n")
    }
}

/// Every test ROM, in a stable order. Building them runs the family snippets on this host
/// to get their expected values, so it takes a moment.
pub fn all() -> Vec<TestRom> {
    let mut v = Vec::new();
    v.extend(modes::all());
    v.extend(paging::all());
    v.extend(exceptions::all());
    v.extend(privilege::all());
    v.extend(families::all());
    v
}

/// ROMs that check architectural behaviour vx does not implement yet (expected output from
/// the SDM): not in `all()`, so the suites stay green; run them with
/// `cargo test --test roms pending -- --ignored`.
pub fn pending() -> Vec<TestRom> {
    vec![exceptions::debug64::build(), privilege::align64::build()]
}

/// The built-in demo guest: it narrates its way from real mode to long mode, computes some
/// primes, and powers off through port 0xCF9 (vx exits with status 0).
pub fn demo() -> Vec<u8> {
    demo::build().image
}

/// The demo as a `TestRom` (its expected narration included).
pub fn demo_rom() -> TestRom {
    demo::build()
}
