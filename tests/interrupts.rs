//! Board-level interrupt tests: small guests that program a timer (the 8254 through the 8259
//! and the local APIC's virtual-wire ExtINT, or the local APIC timer in periodic and
//! TSC-deadline mode), wait in `sti; hlt`, count the interrupts and exit through port 0xf4.
//! They prove that HLT sleeps until the timer, that the interrupt arrives, and that the
//! delays are real time.

mod common;

#[cfg(test)]
mod tests {
    use crate::common;
    use std::time::Duration;

    use accel::AccelKind;
    use iced_x86::code_asm::*;
    use machine::StopReason;

    const TIMEOUT: Duration = Duration::from_secs(20);
    /// Where the guest counts its interrupts.
    const COUNTER: u64 = 0x500;
    /// Interrupts each guest waits for.
    const TICKS: u32 = 10;
    /// What each guest writes to the debug-exit port when done.
    const DONE: u32 = 0x21;

    /// A 64 KiB BIOS image with `pieces` at their offsets and a far jump to F000:0000 at the
    /// reset vector.
    fn image(pieces: &[(usize, Vec<u8>)]) -> Vec<u8> {
        let mut rom = vec![0xf4u8; 64 * 1024];
        for (off, bytes) in pieces {
            rom[*off..*off + bytes.len()].copy_from_slice(bytes);
        }
        rom[0xfff0..0xfff5].copy_from_slice(&[0xea, 0x00, 0x00, 0x00, 0xf0]);
        rom
    }

    fn asm(
        bits: u32,
        ip: u64,
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    ) -> Vec<u8> {
        let mut a = CodeAssembler::new(bits).expect("bitness");
        f(&mut a).expect("assemble");
        a.assemble(ip).expect("encode")
    }

    /// Real mode: IVT[0x20] -> handler, PICs at 0x20/0x28 with only IRQ0 unmasked, PIT
    /// counter 0 in mode 2 at 1 kHz, then `sti; hlt` until TICKS interrupts.
    fn pit_guest() -> Vec<u8> {
        let handler_off = 0x400u16;
        let main = asm(16, 0xf_0000, |a| {
            a.cli()?;
            a.xor(ax, ax)?;
            a.mov(ds, ax)?;
            a.mov(ss, ax)?;
            a.mov(sp, 0x7000)?;
            a.mov(word_ptr(0x20 * 4), i32::from(handler_off))?;
            a.mov(word_ptr(0x20 * 4 + 2), 0xf000)?;
            a.mov(word_ptr(COUNTER), 0)?;
            for (port, v) in [
                (0x20, 0x11),
                (0x21, 0x20),
                (0x21, 0x04),
                (0x21, 0x01),
                (0x21, 0xfe),
                (0xa0, 0x11),
                (0xa1, 0x28),
                (0xa1, 0x02),
                (0xa1, 0x01),
                (0xa1, 0xff),
                // Counter 0, LSB then MSB, mode 2; 1193 = 1 ms.
                (0x43, 0x34),
                (0x40, 0xa9),
                (0x40, 0x04),
            ] {
                a.mov(al, v)?;
                a.out(port, al)?;
            }
            let mut again = a.create_label();
            a.set_label(&mut again)?;
            a.sti()?;
            a.hlt()?;
            a.cmp(word_ptr(COUNTER), TICKS as i32)?;
            a.jb(again)?;
            a.cli()?;
            a.mov(al, DONE)?;
            a.out(0xf4, al)?;
            a.hlt()
        });
        let handler = asm(16, 0xf_0000 + u64::from(handler_off), |a| {
            a.inc(word_ptr(COUNTER))?;
            a.push(ax)?;
            a.mov(al, 0x20)?;
            a.out(0x20, al)?;
            a.pop(ax)?;
            a.iret()
        });
        image(&[(0, main), (usize::from(handler_off), handler)])
    }

    /// Protected mode (flat, no paging): IDT[0x40] -> handler that EOIs the local APIC; the
    /// LAPIC timer in periodic mode at 1 kHz, or (`tsc_deadline`) re-armed 1 ms ahead
    /// through IA32_TSC_DEADLINE before each `sti; hlt`.
    fn lapic_guest(tsc_deadline: bool) -> Vec<u8> {
        const GDTR: u16 = 0x100;
        const GDT: u32 = 0x110;
        const PM32: u32 = 0xf_0200;
        const HANDLER: u32 = 0xf_0600;
        const IDT: u32 = 0x1000;
        const IDTR: u64 = 0x900;
        const LAPIC: u64 = 0xfee0_0000;
        let mut real = vec![
            0xfa, // cli
            0xb8, 0x00, 0xf0, // mov ax, 0xf000
            0x8e, 0xd8, // mov ds, ax
            0x66, 0x0f, 0x01, 0x16, // o32 lgdt [GDTR]
        ];
        real.extend_from_slice(&GDTR.to_le_bytes());
        real.extend_from_slice(&[
            0x0f, 0x20, 0xc0, // mov eax, cr0
            0x66, 0x83, 0xc8, 0x01, // or eax, 1
            0x0f, 0x22, 0xc0, // mov cr0, eax
            0x66, 0xea, // jmp far dword 0x08:PM32
        ]);
        real.extend_from_slice(&PM32.to_le_bytes());
        real.extend_from_slice(&8u16.to_le_bytes());
        let mut gdtr = 23u16.to_le_bytes().to_vec();
        gdtr.extend_from_slice(&(0xf_0000 + GDT).to_le_bytes());
        let mut gdt = vec![0u8; 8];
        gdt.extend_from_slice(&0x00cf_9a00_0000_ffffu64.to_le_bytes());
        gdt.extend_from_slice(&0x00cf_9200_0000_ffffu64.to_le_bytes());
        let pm = asm(32, u64::from(PM32), |a| {
            a.mov(ax, 0x10)?;
            a.mov(ds, ax)?;
            a.mov(es, ax)?;
            a.mov(ss, ax)?;
            a.mov(esp, 0x7000)?;
            // Interrupt gate for vector 0x40: selector 8, DPL 0, 32-bit.
            let gate = u64::from(IDT) + 0x40 * 8;
            a.mov(dword_ptr(gate), (8 << 16) | (HANDLER & 0xffff))?;
            a.mov(dword_ptr(gate + 4), (HANDLER & 0xffff_0000) | 0x8e00)?;
            a.mov(word_ptr(IDTR), 0x7ff)?;
            a.mov(dword_ptr(IDTR + 2), IDT)?;
            a.lidt(dword_ptr(IDTR))?;
            a.mov(dword_ptr(COUNTER), 0)?;
            if tsc_deadline {
                a.mov(dword_ptr(LAPIC + 0x320), (2 << 17) | 0x40)?;
            } else {
                a.mov(dword_ptr(LAPIC + 0x3e0), 0xb)?; // divide by 1
                a.mov(dword_ptr(LAPIC + 0x320), (1 << 17) | 0x40)?;
                a.mov(dword_ptr(LAPIC + 0x380), 1_000_000)?; // 1 ms at 1 GHz
            }
            let mut again = a.create_label();
            a.set_label(&mut again)?;
            if tsc_deadline {
                a.rdtsc()?;
                a.add(eax, 1_000_000)?;
                a.adc(edx, 0)?;
                a.mov(ecx, 0x6e0)?;
                a.wrmsr()?;
            }
            a.sti()?;
            a.hlt()?;
            a.cmp(dword_ptr(COUNTER), TICKS as i32)?;
            a.jb(again)?;
            a.cli()?;
            a.mov(al, DONE)?;
            a.out(0xf4, al)?;
            a.hlt()
        });
        let handler = asm(32, u64::from(HANDLER), |a| {
            a.inc(dword_ptr(COUNTER))?;
            a.mov(dword_ptr(LAPIC + 0xb0), 0)?;
            a.iretd()
        });
        image(&[
            (0, real),
            (usize::from(GDTR), gdtr),
            (GDT as usize, gdt),
            ((PM32 - 0xf_0000) as usize, pm),
            ((HANDLER - 0xf_0000) as usize, handler),
        ])
    }

    /// Long mode: the LAPIC timer in periodic mode at 1 kHz; each round spins ~2 ms with
    /// interrupts disabled (the tick becomes pending while IF=0), then enables interrupts and
    /// spins, without HLT, until the handler has run: the engine must leave the guest at the
    /// interrupt window for the board to deliver it.
    fn window_guest64() -> Vec<u8> {
        use test_roms::asm::tables::{idt64_entry, pte};
        use test_roms::asm::{RomBuilder, boot};
        // The LAPIC page mapped at 1 GiB, where a 32-bit displacement reaches it.
        const LAPIC: u64 = 0x4000_0000;
        let mut rom = RomBuilder::new("irq/window64");
        let mut pt = boot::long_mode_tables();
        pt.map(LAPIC, 0xfee0_0000, 12, pte::RW);
        rom.ram(idt64_entry(0x40, "tick", 0, 0));
        boot::standard_long(&mut rom, &pt, "main", false);
        rom.code64("tick", |a| {
            a.inc(dword_ptr(COUNTER))?;
            a.mov(dword_ptr(LAPIC + 0xb0), 0)?;
            a.iretq()
        });
        rom.code64("main", |a| {
            a.mov(dword_ptr(COUNTER), 0)?;
            a.mov(dword_ptr(LAPIC + 0x3e0), 0xb)?;
            a.mov(dword_ptr(LAPIC + 0x320), (1 << 17) | 0x40)?;
            a.mov(dword_ptr(LAPIC + 0x380), 1_000_000)?;
            let (mut round, mut spin, mut wait) =
                (a.create_label(), a.create_label(), a.create_label());
            a.set_label(&mut round)?;
            a.cli()?;
            a.rdtsc()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            a.lea(rbx, qword_ptr(rax + 2_000_000))?;
            a.set_label(&mut spin)?;
            a.rdtsc()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            a.cmp(rax, rbx)?;
            a.jb(spin)?;
            a.mov(ecx, dword_ptr(COUNTER))?;
            a.sti()?;
            a.set_label(&mut wait)?;
            a.cmp(ecx, dword_ptr(COUNTER))?;
            a.je(wait)?;
            a.cmp(dword_ptr(COUNTER), TICKS as i32)?;
            a.jb(round)?;
            a.cli()?;
            a.mov(al, DONE)?;
            a.out(0xf4, al)?;
            a.hlt()
        });
        rom.build("").image
    }

    fn check(kind: AccelKind, rom: &[u8], what: &str) {
        let out = common::run_image_on(kind, rom, TIMEOUT);
        assert_eq!(
            out.reason,
            StopReason::DebugExit(DONE),
            "{what} on {kind:?}: {:?}\n{}",
            out.reason,
            out.dump
        );
        // TICKS interrupts 1 ms apart: the guest cannot finish in much less than that.
        assert!(
            out.elapsed >= Duration::from_millis(u64::from(TICKS) - 1),
            "{what} on {kind:?}: done after {:?}: HLT did not wait for the timer",
            out.elapsed
        );
        let delivered = out
            .stats
            .counters
            .iter()
            .find(|(k, _)| k == "external interrupts")
            .map(|&(_, v)| v);
        if let Some(n) = delivered {
            assert!(n >= u64::from(TICKS), "{what} on {kind:?}: {n} interrupts");
        }
    }

    #[test]
    fn test_pit_through_pic_wakes_hlt_interp() {
        check(AccelKind::Interp, &pit_guest(), "PIT/8259");
    }

    #[test]
    fn test_lapic_periodic_timer_wakes_hlt_interp() {
        check(AccelKind::Interp, &lapic_guest(false), "LAPIC periodic");
    }

    #[test]
    fn test_lapic_tsc_deadline_wakes_hlt_interp() {
        check(AccelKind::Interp, &lapic_guest(true), "LAPIC TSC-deadline");
    }

    #[test]
    fn test_pit_through_pic_wakes_hlt_jit() {
        check(AccelKind::Jit, &pit_guest(), "PIT/8259");
    }

    #[test]
    fn test_lapic_tsc_deadline_wakes_hlt_jit() {
        check(AccelKind::Jit, &lapic_guest(true), "LAPIC TSC-deadline");
    }

    #[test]
    fn test_interrupt_window_after_sti_interp() {
        check(AccelKind::Interp, &window_guest64(), "window (long mode)");
    }

    #[test]
    fn test_interrupt_window_after_sti_jit() {
        check(AccelKind::Jit, &window_guest64(), "window (long mode)");
    }

    /// Real mode: COM1's receive interrupt (IER bit 0) through the 8259 (only IRQ4
    /// unmasked); `sti; hlt` until the handler has read a byte, which becomes the exit value.
    fn com1_guest() -> Vec<u8> {
        let handler_off = 0x400u16;
        let main = asm(16, 0xf_0000, |a| {
            a.cli()?;
            a.xor(ax, ax)?;
            a.mov(ds, ax)?;
            a.mov(ss, ax)?;
            a.mov(sp, 0x7000)?;
            a.mov(word_ptr(0x24 * 4), i32::from(handler_off))?;
            a.mov(word_ptr(0x24 * 4 + 2), 0xf000)?;
            a.mov(byte_ptr(COUNTER), 0)?;
            for (port, v) in [
                (0x20, 0x11),
                (0x21, 0x20),
                (0x21, 0x04),
                (0x21, 0x01),
                (0x21, 0xef),
            ] {
                a.mov(al, v)?;
                a.out(port, al)?;
            }
            a.mov(dx, 0x3f9)?; // IER: received data available
            a.mov(al, 0x01)?;
            a.out(dx, al)?;
            let mut again = a.create_label();
            a.set_label(&mut again)?;
            a.sti()?;
            a.hlt()?;
            a.cmp(byte_ptr(COUNTER), 0)?;
            a.je(again)?;
            a.cli()?;
            a.mov(al, byte_ptr(COUNTER))?;
            a.out(0xf4, al)?;
            a.hlt()
        });
        let handler = asm(16, 0xf_0000 + u64::from(handler_off), |a| {
            a.push(ax)?;
            a.push(dx)?;
            a.mov(dx, 0x3f8)?;
            a.in_(al, dx)?;
            a.mov(byte_ptr(COUNTER), al)?;
            a.mov(al, 0x20)?;
            a.out(0x20, al)?;
            a.pop(dx)?;
            a.pop(ax)?;
            a.iret()
        });
        image(&[(0, main), (usize::from(handler_off), handler)])
    }

    /// Console input arriving on another thread wakes a guest halted in HLT.
    #[test]
    fn test_com1_input_from_another_thread_wakes_hlt() {
        use machine::{Board, BoardConfig};
        let board = Board::new(BoardConfig {
            memory: common::MEMORY,
            bios: Some(com1_guest()),
            serial_out: None,
            trace_post: false,
        })
        .expect("board");
        let (mut vcpu, _) = accel::create_vcpu(
            AccelKind::Interp,
            board.ram().clone(),
            accel::EntryMode::Real,
        )
        .expect("interpreter");
        vcpu.set_state(&firmware::reset_state());
        let com1 = board.com1();
        let control = board.control();
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            com1.lock().unwrap_or_else(|p| p.into_inner()).receive(b"A");
            std::thread::sleep(TIMEOUT);
            control.request_stop(StopReason::Timeout);
        });
        let start = std::time::Instant::now();
        let reason = board.run(vcpu.as_mut()).expect("run");
        let elapsed = start.elapsed();
        assert_eq!(reason, StopReason::DebugExit(u32::from(b'A')));
        assert!(elapsed >= Duration::from_millis(29), "{elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(5),
            "{elapsed:?}: the wake-up was late"
        );
        drop(feeder); // it only sleeps now; the process exit ends it
    }

    /// `sti; hlt` with no interrupt source sleeps, and a stop request (here the timeout)
    /// still ends it promptly.
    #[test]
    fn test_sti_hlt_sleeps_until_the_timeout() {
        let out = common::run_image(
            &common::reset_vector_rom(&[0xfb, 0xf4, 0xeb, 0xfc]),
            Duration::from_millis(50),
        );
        assert_eq!(out.reason, StopReason::Timeout);
        assert!(
            out.elapsed >= Duration::from_millis(49),
            "{:?}",
            out.elapsed
        );
        assert!(out.elapsed < Duration::from_secs(2), "{:?}", out.elapsed);
    }

    #[test]
    fn test_cli_hlt_still_halts_forever() {
        let out = common::run_image(&common::reset_vector_rom(&[0xfa, 0xf4]), TIMEOUT);
        assert_eq!(out.reason, StopReason::HaltedForever);
    }
}
