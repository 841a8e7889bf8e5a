//! Every test ROM (`test_roms::all()`) and the demo, run in-process on the interpreter: each
//! must stop through the debug-exit port with status 0 and print exactly its expected text.

mod common;

use std::time::Duration;

use machine::StopReason;

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn test_modes_roms() {
    common::check_roms(test_roms::modes::all(), TIMEOUT);
}

#[test]
fn test_paging_roms() {
    common::check_roms(test_roms::paging::all(), TIMEOUT);
}

#[test]
fn test_exceptions_roms() {
    common::check_roms(test_roms::exceptions::all(), TIMEOUT);
}

#[test]
fn test_privilege_roms() {
    common::check_roms(test_roms::privilege::all(), TIMEOUT);
}

#[test]
fn test_families_roms() {
    common::check_roms(test_roms::families::all(), TIMEOUT);
}

#[test]
fn test_demo_narrates_and_powers_off() {
    let rom = test_roms::demo_rom();
    let out = common::run_image(&rom.image, TIMEOUT);
    assert_eq!(out.reason, StopReason::PowerOff, "serial:\n{}\n{}", out.serial, out.dump);
    assert_eq!(out.serial, rom.expected_serial(), "{}", common::first_difference(&out.serial.replace("\r\n", "\n"), &rom.expected));
    assert!(out.elapsed < Duration::from_secs(2), "the demo took {:?}", out.elapsed);
    assert_eq!(test_roms::demo(), rom.image);
}

#[test]
fn test_all_lists_every_area_with_unique_names() {
    let all = test_roms::all();
    let mut names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(n, names.len(), "duplicate ROM names");
    for r in &all {
        assert!(r.image.len() == 64 * 1024 || r.image.len() == 128 * 1024, "{}: {} bytes", r.name, r.image.len());
        assert!(r.expected.ends_with("all checks passed\n"), "{}", r.name);
    }
}

/// `VX_SHOW_ROM=families/alu cargo test --test roms show_rom -- --ignored --nocapture`
/// prints a ROM's serial output and how it stopped (for writing and debugging ROMs).
#[test]
#[ignore]
fn show_rom() {
    let want = std::env::var("VX_SHOW_ROM").unwrap_or_else(|_| "demo".into());
    let mut roms = test_roms::all();
    roms.push(test_roms::demo_rom());
    for rom in roms.into_iter().filter(|r| r.name == want) {
        let out = common::run_image(&rom.image, TIMEOUT);
        println!("{}", out.serial.replace("\r\n", "\n"));
        println!("--- {:?} after {:?}, {} bytes of image\n{}", out.reason, out.elapsed, rom.image.len(), out.dump);
    }
}

/// The family runners must notice a wrong result: a check whose expected RAX is off by one
/// fails with "FAIL", the reason, and debug-exit status 1, in every guest mode.
#[test]
fn test_family_runner_reports_a_mismatch() {
    use iced_x86::code_asm::*;
    use test_roms::check::{Family, State, fl, snippet};
    use test_roms::host::{HostCpu, Spec};
    let host = HostCpu::new();
    for bits in [64u32, 32, 16] {
        let mut st = State::pattern();
        st.regs[0] = 5;
        st.regs[1] = 7;
        let guest = snippet(bits, |a| a.add(eax, ebx));
        let hostcode = snippet(64, |a| a.add(eax, ebx));
        let good = host.check(Spec { name: None, bits, guest: guest.clone(), host: hostcode.clone(), input: st, flags_mask: fl::ALL, ignore: 0 });
        assert_eq!(good.expected.regs[0] & 0xffff_ffff, 12);
        let mut bad = good.clone();
        bad.expected.regs[0] ^= 1;
        let mut bad_flags = good.clone();
        bad_flags.expected.rflags ^= u64::from(fl::CF);
        let fam = Family {
            rom: format!("meta/{bits}"),
            title: "meta".into(),
            bits,
            checks: vec![good, bad, bad_flags],
        };
        let rom = fam.build();
        let out = common::run_image(&rom.image, TIMEOUT);
        let text = out.serial.replace("\r\n", "\n");
        assert_eq!(out.reason, StopReason::DebugExit(1), "{bits}-bit:\n{text}");
        assert!(text.contains("ok 1 add eax, ebx\n"), "{bits}-bit:\n{text}");
        assert!(text.contains("FAIL 2 add eax, ebx\n"), "{bits}-bit:\n{text}");
        assert!(text.contains("expected 0xd"), "{bits}-bit:\n{text}");
        assert!(text.contains("FAIL 3 add eax, ebx\n"), "{bits}-bit:\n{text}");
        assert!(text.contains("flags = 0x4 expected 0x5 (bits compared: 0xcd5)"), "{bits}-bit:\n{text}");
        assert!(text.ends_with("checks failed: 2\n"), "{bits}-bit:\n{text}");
    }
}
