//! First checks: tiny programs give the same final state on the JIT as on the interpreter.

mod common;

use common::*;
use iced_x86::code_asm::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn same(code: Vec<u8>) -> jit::JitVcpu {
        let st = long_mode_state();
        let (a, ea) = run_interp(guest(&code, &[]), &st);
        let (b, eb, v) = run_jit(guest(&code, &[]), &st);
        assert_eq!(ea, eb);
        let d = diff_states(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        v
    }

    #[test]
    fn test_smoke_add_and_halt() {
        let v = same(asm(|a| {
            a.mov(rax, 5u64)?;
            a.add(rax, 7)?;
            a.hlt()
        }));
        let s = cpu::Vcpu::stats(&v);
        eprintln!("{:?}", s);
    }

    #[test]
    fn test_smoke_loop() {
        same(asm(|a| {
            let mut l = a.create_label();
            a.mov(ecx, 1000u32)?;
            a.xor(eax, eax)?;
            a.set_label(&mut l)?;
            a.add(rax, rcx)?;
            a.dec(ecx)?;
            a.jnz(l)?;
            a.hlt()
        }));
    }

    /// The worked example in docs/architecture.md (run with VX_JIT_DUMP=1 to see it).
    #[test]
    fn test_smoke_sum_loop() {
        let code = asm(|a| {
            let mut top = a.create_label();
            a.mov(edi, DATA as u32)?;
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)?;
            a.mov(edx, 16u32)?;
            a.set_label(&mut top)?;
            a.add(rax, qword_ptr(rdi + rcx * 8))?;
            a.inc(rcx)?;
            a.cmp(rcx, rdx)?;
            a.jb(top)?;
            a.hlt()
        });
        let data: Vec<u8> = (1..=16u64).flat_map(|v| v.to_le_bytes()).collect();
        let st = long_mode_state();
        let (a, _) = run_interp(guest(&code, &data), &st);
        let (b, _, _) = run_jit(guest(&code, &data), &st);
        assert!(diff_states(&a, &b).is_empty());
        assert_eq!(b.gpr[0], 136);
    }
}
