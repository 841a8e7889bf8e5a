//! Booting Linux through the boot protocol (`vx run --kernel`): what bad kernels, initrds and
//! command lines get (one line, status 2).

mod common;

/// A synthetic bzImage header (4 setup sectors, protocol `version`, 64-bit entry flag
/// `xload`, `init_size`) followed by `payload` bytes: enough for vx's checks, not a kernel.
fn fake_bzimage(version: u16, xload: u16, payload: usize, init_size: u32) -> Vec<u8> {
    let mut d = vec![0u8; 5 * 512 + payload];
    d[0x1f1] = 4;
    d[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    d[0x200] = 0xeb;
    d[0x201] = 0x6a;
    d[0x202..0x206].copy_from_slice(b"HdrS");
    d[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    d[0x211] = 1; // LOADED_HIGH
    d[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    d[0x236..0x238].copy_from_slice(&xload.to_le_bytes());
    d[0x238..0x23c].copy_from_slice(&255u32.to_le_bytes());
    d[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
    d
}

fn assert_usage_error(args: &[&str], mention: &str) {
    let r = common::vx(args);
    assert_eq!(r.status, 2, "vx {args:?}: stderr {}", r.stderr);
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "vx {args:?}: one line expected, got {:?}",
        r.stderr
    );
    assert!(
        r.stderr.contains(mention),
        "vx {args:?}: stderr {:?} should mention {mention:?}",
        r.stderr
    );
}

#[test]
fn test_bad_kernels_initrds_and_command_lines_are_status_2_with_one_line() {
    let dir = std::env::temp_dir();
    let missing = dir.join(format!("vx-test-{}-missing-bzImage", std::process::id()));
    assert_usage_error(
        &["run", "--kernel", &missing.display().to_string()],
        "missing-bzImage",
    );
    let text = common::TempFile::new("text-kernel", &[b'x'; 4096]);
    assert_usage_error(&["run", "--kernel", &text.arg()], "not a Linux bzImage");
    let old = common::TempFile::new("old-kernel", &fake_bzimage(0x0204, 0, 4096, 0));
    assert_usage_error(
        &["run", "--kernel", &old.arg()],
        "boot protocol 2.04 is too old",
    );
    let k32 = common::TempFile::new("k32-kernel", &fake_bzimage(0x020f, 0, 4096, 0));
    assert_usage_error(&["run", "--kernel", &k32.arg()], "no 64-bit entry point");
    let huge = common::TempFile::new("huge-kernel", &fake_bzimage(0x020f, 1, 4096, 64 << 20));
    assert_usage_error(
        &["run", "--kernel", &huge.arg(), "--memory", "32M"],
        "raise --memory",
    );
    let k = common::TempFile::new("ok-kernel", &fake_bzimage(0x020f, 1, 4096, 1 << 20));
    let gone = dir.join(format!("vx-test-{}-missing-initrd", std::process::id()));
    assert_usage_error(
        &[
            "run",
            "--kernel",
            &k.arg(),
            "--initrd",
            &gone.display().to_string(),
        ],
        "missing-initrd",
    );
    let rd = common::TempFile::new("big-initrd", &vec![0u8; 30 << 20]);
    assert_usage_error(
        &[
            "run",
            "--kernel",
            &k.arg(),
            "--initrd",
            &rd.arg(),
            "--memory",
            "24M",
        ],
        "initrd",
    );
    let long = "x".repeat(300);
    assert_usage_error(
        &["run", "--kernel", &k.arg(), "--append", &long],
        "command line",
    );
    assert_usage_error(&["run", "--initrd", &rd.arg()], "--kernel");
    assert_usage_error(&["run", "--kernel", &k.arg(), "--bios", &k.arg()], "--bios");
}
