//! Engine behaviour the differential tests do not reach: self-modifying code, a page fault in
//! the middle of a block, a kick arriving while a block loops forever, an injected interrupt,
//! and blocks that end at a page boundary.

mod common;

use std::time::Duration;

use common::*;
use cpu::{Vcpu, VcpuExit};
use iced_x86::code_asm::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(v: &jit::JitVcpu, name: &str) -> u64 {
        v.stats()
            .counters
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |c| c.1)
    }

    fn same_on_both(code: &[u8], data: &[u8]) -> (cpu::CpuState, jit::JitVcpu, cpu::GuestRam) {
        let st = long_mode_state();
        let (a, ea) = run_interp(guest(code, data), &st);
        let ram = guest(code, data);
        let (b, eb, v) = run_jit(ram.clone(), &st);
        assert_eq!(ea, eb);
        let d = diff_states(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        (b, v, ram)
    }

    #[test]
    fn test_mov_from_segment_registers_and_cli_run_translated() {
        // MOV r32/r64, Sreg zero-extends the selector; MOV r16, Sreg keeps the upper bits
        // (SDM Vol. 2B MOV). CLI at CPL 0 clears IF (SDM Vol. 2A CLI).
        let code = asm(|a| {
            a.mov(rax, -1i64)?;
            a.mov(rbx, -1i64)?;
            a.mov(rcx, -1i64)?;
            a.mov(eax, ss)?;
            a.mov(bx, cs)?;
            a.mov(rcx, ds)?;
            // STI's shadow runs on the interpreter up to the jump; the JIT translates from L.
            let mut l = a.create_label();
            a.sti()?;
            a.nop()?;
            a.jmp(l)?;
            a.set_label(&mut l)?;
            a.cli()?;
            a.hlt()
        });
        let (st, v, _) = same_on_both(&code, &[]);
        let sel = |n: usize| u64::from(st.seg[n].selector);
        assert_eq!(st.gpr[0], sel(cpu::state::sreg::SS));
        assert_eq!(st.gpr[3], 0xffff_ffff_ffff_0000 | sel(cpu::state::sreg::CS));
        assert_eq!(st.gpr[1], sel(cpu::state::sreg::DS));
        // CLI at CPL 0 clears IF in generated code.
        assert_eq!(st.rflags & cpu::state::flags::IF, 0);
        let stats = cpu::Vcpu::stats(&v);
        let jit = stats.counters.iter().find(|(k, _)| k == "jit instructions");
        assert!(jit.is_some_and(|c| c.1 >= 7), "{:?}", stats.counters);
        let fb = stats.counters.iter().find(|(k, _)| k == "fallback cli");
        assert!(fb.is_none(), "{:?}", stats.counters);
    }

    #[test]
    fn test_bit_string_offsets_and_prefetch_run_translated() {
        // BTS/BTR/BT with a register bit offset address the word at the operand plus
        // size * (offset SAR log2(width)), offsets signed (SDM Vol. 2A BT, "bit string").
        let code = asm(|a| {
            a.mov(rbx, DATA + 0x100)?;
            a.prefetcht0(byte_ptr(rbx))?;
            a.mov(rcx, -1i64)?;
            a.bts(qword_ptr(rbx), rcx)?; // bit 63 of the qword at DATA+0xf8
            a.mov(rcx, 130u64)?;
            a.bts(qword_ptr(rbx), rcx)?; // bit 2 of the qword at DATA+0x110
            a.mov(edx, -33i32 as u32)?;
            a.btr(dword_ptr(rbx), edx)?; // bit 31 of the dword at DATA+0xf8
            a.setc(r8b)?;
            a.mov(rcx, 130u64)?;
            a.bt(qword_ptr(rbx), rcx)?;
            a.setc(r9b)?;
            a.hlt()
        });
        let (st, v, ram) = same_on_both(&code, &[0xff; 0x200]);
        assert_eq!(st.gpr[8] & 0xff, 1, "BTR saw bit 31 set");
        assert_eq!(st.gpr[9] & 0xff, 1, "BT sees the bit BTS set");
        let q = |addr: u64| u64::from_le_bytes(peek(&ram, addr, 8).try_into().expect("8 bytes"));
        assert_eq!(q(DATA + 0xf8), 0xffff_ffff_7fff_ffff);
        assert_eq!(q(DATA + 0x110), u64::MAX);
        // Everything but the HLT ran as generated code.
        let stats = cpu::Vcpu::stats(&v);
        let jit = stats.counters.iter().find(|(k, _)| k == "jit instructions");
        assert_eq!(jit.map(|c| c.1), Some(12), "{:?}", stats.counters);
    }

    #[test]
    fn test_smc_patch_ahead_in_same_block() {
        // The store rewrites the immediate of an instruction later in the same block.
        let code = asm(|a| {
            let mut site = a.create_label();
            a.mov(eax, 1u32)?;
            a.lea(rbx, ptr(site))?;
            a.mov(byte_ptr(rbx + 1), 42u32)?;
            a.add(eax, 1)?;
            a.set_label(&mut site)?;
            a.mov(ecx, 7u32)?;
            a.hlt()
        });
        let (st, v, _) = same_on_both(&code, &[]);
        assert_eq!(
            st.gpr[1], 42,
            "the patched instruction must run with its new bytes"
        );
        assert!(stat(&v, "blocks invalidated") >= 1);
    }

    #[test]
    fn test_smc_patch_translated_function() {
        // A function runs (and is translated), is patched, runs again: the second call must see
        // the new code. Five rounds, each patching the immediate.
        let code = asm(|a| {
            let mut f = a.create_label();
            let mut top = a.create_label();
            a.xor(ebx, ebx)?;
            a.mov(r8d, 5u32)?;
            a.lea(rsi, ptr(f))?;
            a.set_label(&mut top)?;
            a.call(f)?;
            a.add(rbx, rax)?;
            a.add(byte_ptr(rsi + 1), 10)?;
            a.dec(r8d)?;
            a.jnz(top)?;
            a.hlt()?;
            a.set_label(&mut f)?;
            a.mov(eax, 3u32)?;
            a.ret()
        });
        let (st, v, _) = same_on_both(&code, &[]);
        assert_eq!(st.gpr[3], 3 + 13 + 23 + 33 + 43);
        assert!(stat(&v, "blocks invalidated") >= 4);
    }

    #[test]
    fn test_smc_through_interpreter_fallback_write() {
        // The patch is written by an instruction the JIT leaves to the interpreter (STOSB): the
        // code epoch makes the page revalidate before the patched code runs again.
        let code = asm(|a| {
            let mut f = a.create_label();
            let mut top = a.create_label();
            a.xor(ebx, ebx)?;
            a.mov(r8d, 3u32)?;
            a.lea(rsi, ptr(f))?;
            a.set_label(&mut top)?;
            a.call(f)?;
            a.add(rbx, rax)?;
            a.movzx(eax, byte_ptr(rsi + 1))?;
            a.add(eax, 100)?;
            a.lea(rdi, qword_ptr(rsi + 1))?;
            a.stosb()?;
            a.dec(r8d)?;
            a.jnz(top)?;
            a.hlt()?;
            a.set_label(&mut f)?;
            a.mov(eax, 1u32)?;
            a.ret()
        });
        let (st, _, _) = same_on_both(&code, &[]);
        assert_eq!(st.gpr[3], 1 + 101 + 201);
    }

    #[test]
    fn test_page_fault_mid_block_is_precise() {
        // The load from an unmapped page faults in the middle of a block: RIP, registers and the
        // flags pushed by the exception must be those before the faulting instruction.
        let hole = 0x15_0000u64;
        let code = asm(|a| {
            a.mov(eax, 0x7fff_ffffu32)?;
            a.mov(ebx, 5u32)?;
            a.add(eax, 1)?; // sets OF, SF, AF, PF: lazily
            a.mov(rdx, 0x1122_3344u64)?;
            a.mov(rcx, qword_ptr(hole + 8))?;
            a.mov(ebx, 99u32)?;
            a.hlt()
        });
        let st = long_mode_state();
        let make = || {
            let ram = guest(&code, &[]);
            // Unmap the 4 KiB page at `hole`.
            assert!(ram.write(PT + (hole >> 12) * 8, &0u64.to_le_bytes()));
            ram
        };
        let (a, _) = run_interp(make(), &st);
        let ram = make();
        let (b, e, v) = run_jit(ram.clone(), &st);
        assert_eq!(e, VcpuExit::Halted);
        let d = diff_states(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(b.rip, STUBS + 14 * 16 + 1, "halted in the #PF stub");
        assert_eq!(b.cr2, hole + 8);
        // Exception frame: error code, RIP, CS, RFLAGS, RSP, SS.
        let frame = peek(&ram, STACK - 48, 48);
        let q = |k: usize| u64::from_le_bytes(frame[k * 8..k * 8 + 8].try_into().unwrap());
        let fault_rip = iced_x86::Decoder::with_ip(64, &code, CODE, iced_x86::DecoderOptions::NONE)
            .into_iter()
            .find(|i| i.op_count() == 2 && i.op_kind(1) == iced_x86::OpKind::Memory)
            .expect("the load")
            .ip();
        assert_eq!(q(1), fault_rip, "pushed RIP is the faulting instruction");
        assert_eq!(q(0), 0, "not-present read from supervisor mode");
        let flags = q(3);
        assert_eq!(
            flags & 0x8d5,
            0x880 | 0x10 | 0x4,
            "OF SF AF PF set, ZF CF clear: {flags:#x}"
        );
        assert_eq!(b.gpr[3], 5, "RBX not yet overwritten");
        assert_eq!(b.gpr[2], 0x1122_3344);
        assert!(stat(&v, "faults") >= 1);
    }

    #[test]
    fn test_store_fault_to_read_only_page_leaves_memory_and_registers() {
        let ro = 0x16_0000u64;
        let code = asm(|a| {
            a.mov(rax, 0x55u64)?;
            a.push(rax)?;
            a.add(qword_ptr(ro), rax)?;
            a.pop(rbx)?;
            a.hlt()
        });
        let st = long_mode_state();
        let make = || {
            let ram = guest(&code, &[]);
            assert!(ram.write(PT + (ro >> 12) * 8, &(ro | 1).to_le_bytes()));
            assert!(ram.write(ro, &7u64.to_le_bytes()));
            ram
        };
        let (a, _) = run_interp(make(), &st);
        let ram = make();
        let (b, _, _) = run_jit(ram.clone(), &st);
        let d = diff_states(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(b.rip, STUBS + 14 * 16 + 1);
        assert_eq!(peek(&ram, ro, 8), 7u64.to_le_bytes());
    }

    #[test]
    fn test_kick_interrupts_an_endless_loop() {
        let code = asm(|a| {
            let mut top = a.create_label();
            a.xor(eax, eax)?;
            a.set_label(&mut top)?;
            a.inc(rax)?;
            a.jmp(top)
        });
        let ram = guest(&code, &[]);
        let mut st = long_mode_state();
        st.rflags |= cpu::state::flags::IF;
        let mut v = jit::JitVcpu::with_options(ram, jit::JitOptions::eager()).expect("jit");
        v.set_state(&st);
        let k = v.kicker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            k.kick();
        });
        let io = Io::default();
        let e = v.run(&io).expect("run");
        t.join().unwrap();
        assert_eq!(e, VcpuExit::Kicked);
        let s = v.get_state();
        assert!(s.gpr[0] > 1000, "the loop ran: rax = {}", s.gpr[0]);
        assert!(
            s.rip == CODE + 2 || s.rip == CODE + 5,
            "RIP inside the loop: {:#x}",
            s.rip
        );
        // An interrupt delivered now lands in its stub, with the loop's RIP in the frame.
        assert!(v.interrupts_enabled());
        v.inject_interrupt(0x20);
        assert_eq!(v.run(&io).expect("run"), VcpuExit::Halted);
        let s2 = v.get_state();
        assert_eq!(s2.rip, STUBS + 0x20 * 16 + 1);
        let frame = peek(v.interp().ram(), STACK - 40, 40);
        let pushed_rip = u64::from_le_bytes(frame[0..8].try_into().unwrap());
        assert_eq!(pushed_rip, s.rip);
        assert!(stat(&v, "block executions") > 0);
    }

    #[test]
    fn test_blocks_end_at_page_boundaries() {
        // Straight-line code runs across two page boundaries; one instruction straddles the
        // second boundary (the JIT never decodes across a page: the interpreter runs it).
        let start = CODE + 0x1000 - 0x40;
        let mut a = CodeAssembler::new(64).expect("asm");
        a.xor(eax, eax).unwrap();
        for k in 0..20u32 {
            a.add(eax, k as i32).unwrap();
            a.imul_3(ebx, eax, 3).unwrap();
        }
        let mut code = a.assemble(start).unwrap();
        // Pad with single-byte INCs so that a 10-byte MOV straddles the next boundary.
        let second = CODE + 0x2000;
        while start + code.len() as u64 + 10 <= second + 3 {
            code.extend_from_slice(&[0xff, 0xc0]); // inc eax
        }
        if start + code.len() as u64 + 10 <= second + 3 {
            code.push(0x90);
        }
        while start + code.len() as u64 > second - 4 || start + code.len() as u64 + 10 <= second {
            code.pop();
        }
        code.extend_from_slice(&[0x48, 0xb9, 1, 2, 3, 4, 5, 6, 7, 8]); // mov rcx, imm64
        code.extend_from_slice(&[0x01, 0xc8, 0xf4]); // add eax, ecx; hlt
        let mut image = vec![0x90u8; (start - CODE) as usize];
        image.extend_from_slice(&code);
        let st = long_mode_state();
        let mut s2 = st;
        s2.rip = start;
        let (a_st, _) = run_interp(guest(&image, &[]), &s2);
        let (b_st, _, v) = run_jit(guest(&image, &[]), &s2);
        let d = diff_states(&a_st, &b_st);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(b_st.gpr[1], 0x0807_0605_0403_0201);
        assert!(stat(&v, "blocks translated") >= 3);
        let _ = st;
    }

    #[test]
    fn test_code_generation_flush_keeps_running() {
        // 1500 small blocks run three times with only 512 KiB of code space per generation:
        // the code arena fills, every block is dropped, translation starts over, and the
        // result is still the interpreter's.
        let code = asm(|a| {
            let mut top = a.create_label();
            a.mov(r13d, 3u32)?;
            a.xor(eax, eax)?;
            a.set_label(&mut top)?;
            for k in 0..1500u32 {
                a.add(rax, (k * 7 + 1) as i32)?;
                a.imul_3(rbx, rax, 3)?;
                a.lfence()?;
            }
            a.dec(r13d)?;
            a.jnz(top)?;
            a.hlt()
        });
        let st = long_mode_state();
        let (a, _) = run_interp(guest(&code, &[]), &st);
        let mut v = jit::JitVcpu::with_code_space(guest(&code, &[]), 512 << 10).expect("jit");
        v.set_state(&st);
        let io = Io::default();
        assert_eq!(run_until_halt(&mut v, &io), VcpuExit::Halted);
        let b = v.get_state();
        let d = diff_states(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        assert!(
            stat(&v, "code generations") >= 2,
            "{:?}",
            v.stats().counters
        );
    }

    #[test]
    fn test_tiered_smc_and_loops_match_interpreter() {
        // With translation deferred to the third execution, the patched function runs on the
        // interpreter first, then translated, then patched again: same results.
        let code = asm(|a| {
            let mut f = a.create_label();
            let mut top = a.create_label();
            a.xor(ebx, ebx)?;
            a.mov(r8d, 6u32)?;
            a.lea(rsi, ptr(f))?;
            a.set_label(&mut top)?;
            a.call(f)?;
            a.add(rbx, rax)?;
            a.add(byte_ptr(rsi + 1), 10)?;
            a.dec(r8d)?;
            a.jnz(top)?;
            a.hlt()?;
            a.set_label(&mut f)?;
            a.mov(eax, 3u32)?;
            a.ret()
        });
        let st = long_mode_state();
        let (a, _) = run_interp(guest(&code, &[]), &st);
        let opts = jit::JitOptions {
            hot_threshold: 3,
            ..jit::JitOptions::default()
        };
        let (b, _, v) = run_jit_with(guest(&code, &[]), &st, opts);
        let d = diff_states(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(b.gpr[3], 3 + 13 + 23 + 33 + 43 + 53);
        assert!(stat(&v, "cold instructions") > 0);
    }
}
