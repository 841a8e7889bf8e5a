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
