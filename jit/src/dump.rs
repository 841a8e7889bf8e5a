//! `VX_JIT_DUMP=1`: print each translated block as guest assembly, Cranelift IR and host
//! disassembly (decoded with iced-x86: the host is x86_64 here; other hosts get hex).

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// Print one block.
pub fn print(guest: &str, ir: &str, host: &[u8], addr: u64, index: u64) {
    let mut out = String::new();
    // `index` counts the generation's functions (the trampoline is 1): profilers that name
    // JIT code `.LfnN` use the module's function ids, which are `index - 1`.
    out.push_str(&format!(
        "=== vx JIT block (function {index}, id {:#x}) ===\n--- guest ---\n",
        index.saturating_sub(1)
    ));
    out.push_str(guest);
    out.push_str("--- Cranelift IR ---\n");
    out.push_str(ir);
    out.push_str(&format!(
        "--- host code ({} bytes at {addr:#x}) ---\n",
        host.len()
    ));
    if cfg!(target_arch = "x86_64") {
        let mut dec = Decoder::with_ip(64, host, addr, DecoderOptions::NONE);
        let mut fmt = IntelFormatter::new();
        let mut s = String::new();
        while dec.can_decode() {
            let i = dec.decode();
            s.clear();
            fmt.format(&i, &mut s);
            out.push_str(&format!("  {:016x}  {s}\n", i.ip()));
        }
    } else {
        for chunk in host.chunks(16) {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("  {}\n", hex.join(" ")));
        }
    }
    eprint!("{out}");
}
