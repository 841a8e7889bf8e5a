//! Ground truth from silicon: run a check's snippet natively on this x86_64 host, through the
//! same 64-bit harness the ROMs use (`check::harness64`), and take its output state as the
//! expected result. The harness and snippet are copied into an anonymous mapping, which is
//! then made executable and called as an `extern "C" fn(*mut State)`.

use memmap2::MmapMut;

use crate::check::{Check, State, fl, harness64};

/// Where the snippet goes in the mapping (the harness is at offset 0).
const SNIPPET_OFFSET: usize = 0x1000;
/// Mapping size.
const MAP_SIZE: usize = 0x2000;

/// What a family generator hands over: one check before its expected values exist.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Name printed by the ROM (None: the guest snippet's disassembly).
    pub name: Option<String>,
    /// Guest code bitness (16, 32 or 64).
    pub bits: u32,
    /// The snippet the guest runs.
    pub guest: Vec<u8>,
    /// The 64-bit snippet the host runs (for 64-bit checks, the same bytes).
    pub host: Vec<u8>,
    /// Input state.
    pub input: State,
    /// RFLAGS bits to compare (`fl::ALL` minus the SDM's undefined flags).
    pub flags_mask: u32,
    /// Registers (bit i) and memory (`check::MEM_BIT`) whose result is undefined.
    pub ignore: u16,
}

impl Spec {
    /// A 64-bit check: the guest and the host run the same snippet.
    pub fn same(snippet: Vec<u8>, input: State, flags_mask: u32) -> Spec {
        Spec {
            name: None,
            bits: 64,
            guest: snippet.clone(),
            host: snippet,
            input,
            flags_mask,
            ignore: 0,
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "test-roms takes the family ROMs' expected values from the host CPU: it needs an x86_64 host"
);

/// Runs snippets on the host CPU.
#[derive(Debug, Default)]
pub struct HostCpu {
    harness: Vec<u8>,
}

impl HostCpu {
    /// A runner (assembles the harness once).
    pub fn new() -> HostCpu {
        HostCpu {
            harness: crate::asm::rom::assemble(64, 0, harness64),
        }
    }

    /// Run the 64-bit `snippet` on `input` natively and return the output state.
    pub fn run(&self, snippet: &[u8], input: &State) -> State {
        assert!(self.harness.len() <= SNIPPET_OFFSET && snippet.len() <= MAP_SIZE - SNIPPET_OFFSET);
        let mut m = MmapMut::map_anon(MAP_SIZE).expect("anonymous mapping for host snippets");
        m[..self.harness.len()].copy_from_slice(&self.harness);
        m[SNIPPET_OFFSET..SNIPPET_OFFSET + snippet.len()].copy_from_slice(snippet);
        let code = m.make_exec().expect("make the snippet mapping executable");
        let mut st = *input;
        st.code = code.as_ptr() as u64 + SNIPPET_OFFSET as u64;
        // Only the flags a user-mode POPFQ may set, and never TF (a trap) or AC (alignment
        // checks, which Linux enables for user mode).
        st.rflags = (st.rflags & u64::from(fl::ALL)) | 2;
        // SAFETY: the mapping holds the harness (valid 64-bit code that follows the SysV ABI
        // for `extern "C" fn(*mut State)`) and a snippet that only touches the registers,
        // the state's memory block through R15 and the stack in balanced pushes and pops —
        // the contract every family generator follows. `st` outlives the call.
        unsafe {
            let f: extern "C" fn(*mut State) = std::mem::transmute(code.as_ptr());
            f(&mut st);
        }
        st.code = 0;
        st
    }

    /// Turn a spec into a check: run the host snippet, keep the guest snippet.
    pub fn check(&self, spec: Spec) -> Check {
        let mut input = spec.input;
        input.rflags = (input.rflags & u64::from(fl::ALL)) | 2;
        let out = self.run(&spec.host, &input);
        let name = spec
            .name
            .unwrap_or_else(|| crate::check::disasm(spec.bits, &spec.guest));
        let mut expected = out;
        // Compare only what the guest can reproduce: outside 64-bit mode, the low 32 bits.
        if spec.bits != 64 {
            for i in 0..crate::check::NREGS {
                expected.regs[i] = (input.regs[i] & !0xffff_ffff) | (out.regs[i] & 0xffff_ffff);
            }
        }
        expected.rflags = (out.rflags & u64::from(fl::ALL)) | 2;
        Check {
            name,
            guest: spec.guest,
            input,
            expected,
            flags_mask: spec.flags_mask,
            ignore: spec.ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::snippet;
    use iced_x86::code_asm::*;

    #[test]
    fn test_host_runs_add_and_reports_flags() {
        let h = HostCpu::new();
        let mut st = State::pattern();
        st.regs[0] = u64::MAX;
        st.regs[1] = 1;
        let code = snippet(64, |a| a.add(rax, rbx));
        let out = h.run(&code, &st);
        assert_eq!(out.regs[0], 0);
        assert_eq!(out.regs[1], 1);
        assert_eq!(out.regs[2], st.regs[2]);
        let f = out.rflags as u32;
        assert_eq!(f & (fl::CF | fl::ZF | fl::SF | fl::OF), fl::CF | fl::ZF);
    }

    #[test]
    fn test_host_memory_block_at_r15() {
        let h = HostCpu::new();
        let st = State::pattern();
        let code = snippet(64, |a| {
            a.mov(rax, qword_ptr(r15 + 8))?;
            a.mov(qword_ptr(r15), rax)
        });
        let out = h.run(&code, &st);
        assert_eq!(out.mem[..8], st.mem[8..16]);
        assert_eq!(
            out.regs[0],
            u64::from_le_bytes(st.mem[8..16].try_into().expect("8 bytes"))
        );
    }
}
