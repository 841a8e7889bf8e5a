//! Every test ROM (`test_roms::all()`) and the demo, run in-process on the JIT through the
//! shared ROM runner: each must end exactly as on the interpreter (debug-exit 0, or power-off
//! for the demo) with exactly the expected serial output.

mod common;

use std::time::Duration;

use accel::AccelKind;
use common::{check_roms_on, first_difference, run_image_on};
use machine::StopReason;

const TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_jit_all_roms() {
        // VX_JIT_ROM=substring runs only the matching ROMs (debugging).
        let filter = std::env::var("VX_JIT_ROM").unwrap_or_default();
        // Two at a time: the CI machines have few cores, and each JIT maps its code area.
        check_roms_on(
            AccelKind::Jit,
            test_roms::all()
                .into_iter()
                .filter(|r| r.name.contains(&filter))
                .collect(),
            TIMEOUT,
            2,
        );
    }

    #[test]
    fn test_jit_demo_narrates_and_powers_off() {
        let rom = test_roms::demo_rom();
        let out = run_image_on(AccelKind::Jit, &rom.image, TIMEOUT);
        assert_eq!(
            out.reason,
            StopReason::PowerOff,
            "serial:\n{}\n{}",
            out.serial,
            out.dump
        );
        assert_eq!(
            out.serial,
            rom.expected_serial(),
            "{}",
            first_difference(&out.serial.replace("\r\n", "\n"), &rom.expected)
        );
    }
}
