//! National Semiconductor PC16550D UART (datasheet, June 1995): the PC's COM ports.
//!
//! Transmission is instantaneous (THR is always empty again when the guest looks); received
//! bytes queue in a FIFO the host side fills with `receive`.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Receiver buffer (read, DLAB=0).
pub const RBR: u64 = 0;
/// Transmitter holding register (write, DLAB=0).
pub const THR: u64 = 0;
/// Interrupt enable register (DLAB=0).
pub const IER: u64 = 1;
/// Interrupt identification (read) / FIFO control (write).
pub const IIR: u64 = 2;
/// FIFO control register (write).
pub const FCR: u64 = 2;
/// Line control register.
pub const LCR: u64 = 3;
/// Modem control register.
pub const MCR: u64 = 4;
/// Line status register.
pub const LSR: u64 = 5;
/// Modem status register.
pub const MSR: u64 = 6;
/// Scratch register.
pub const SCR: u64 = 7;

/// IER: received data available interrupt.
pub const IER_RDA: u8 = 1 << 0;
/// IER: THR empty interrupt.
pub const IER_THRE: u8 = 1 << 1;
/// IER: receiver line status interrupt.
pub const IER_RLS: u8 = 1 << 2;
/// IER: modem status interrupt.
pub const IER_MS: u8 = 1 << 3;

/// IIR: no interrupt pending.
pub const IIR_NONE: u8 = 0x01;
/// IIR: THR empty.
pub const IIR_THRE: u8 = 0x02;
/// IIR: received data available.
pub const IIR_RDA: u8 = 0x04;
/// IIR: FIFOs enabled (bits 6 and 7).
pub const IIR_FIFO: u8 = 0xc0;

/// FCR: enable FIFOs.
pub const FCR_ENABLE: u8 = 1 << 0;
/// FCR: clear receive FIFO.
pub const FCR_CLEAR_RX: u8 = 1 << 1;

/// LCR: divisor latch access bit.
pub const LCR_DLAB: u8 = 1 << 7;

/// MCR: loopback mode.
pub const MCR_LOOP: u8 = 1 << 4;

/// LSR: data ready.
pub const LSR_DATA_READY: u8 = 1 << 0;
/// LSR: overrun error.
pub const LSR_OVERRUN: u8 = 1 << 1;
/// LSR: THR empty.
pub const LSR_THR_EMPTY: u8 = 1 << 5;
/// LSR: transmitter empty (THR and shift register).
pub const LSR_TEMT: u8 = 1 << 6;

/// MSR: clear to send.
pub const MSR_CTS: u8 = 1 << 4;
/// MSR: data set ready.
pub const MSR_DSR: u8 = 1 << 5;
/// MSR: ring indicator.
pub const MSR_RI: u8 = 1 << 6;
/// MSR: data carrier detect.
pub const MSR_DCD: u8 = 1 << 7;

/// Receive queue capacity; bytes beyond it are dropped and flagged as an overrun.
pub const RX_CAPACITY: usize = 4096;

/// A 16550A UART.
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    dll: u8,
    dlm: u8,
    overrun: bool,
    thre_pending: bool,
    rx: VecDeque<u8>,
    out: Option<Box<dyn Write + Send>>,
    irq: Arc<dyn IrqLine>,
}

impl std::fmt::Debug for Uart16550 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uart16550")
            .field("ier", &self.ier)
            .field("lcr", &self.lcr)
            .field("rx", &self.rx.len())
            .finish()
    }
}

impl Uart16550 {
    /// A UART writing transmitted bytes to `out` (or discarding them) and signalling `irq`.
    pub fn new(out: Option<Box<dyn Write + Send>>, irq: Arc<dyn IrqLine>) -> Uart16550 {
        Uart16550 {
            ier: 0,
            lcr: 0x03,
            mcr: 0x08,
            scr: 0,
            fcr: 0,
            dll: 0x0c,
            dlm: 0,
            overrun: false,
            thre_pending: false,
            rx: VecDeque::new(),
            out,
            irq,
        }
    }

    /// Host side: bytes arriving on the line.
    pub fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.rx.len() >= RX_CAPACITY {
                self.overrun = true;
            } else {
                self.rx.push_back(b);
            }
        }
        self.update_irq();
    }

    /// Room left in the receive queue.
    pub fn rx_space(&self) -> usize {
        RX_CAPACITY - self.rx.len()
    }

    fn pending(&self) -> u8 {
        if self.ier & IER_RDA != 0 && !self.rx.is_empty() {
            IIR_RDA
        } else if self.ier & IER_THRE != 0 && self.thre_pending {
            IIR_THRE
        } else {
            IIR_NONE
        }
    }

    fn update_irq(&self) {
        self.irq.set_level(self.pending() != IIR_NONE);
    }

    fn transmit(&mut self, b: u8) {
        if self.mcr & MCR_LOOP != 0 {
            self.receive(&[b]);
        } else if let Some(out) = self.out.as_mut() {
            // A failing console must not stop the guest: drop the byte.
            let _ = out.write_all(&[b]);
            let _ = out.flush();
        }
        self.thre_pending = true;
    }

    fn msr(&self) -> u8 {
        if self.mcr & MCR_LOOP != 0 {
            // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
            let m = self.mcr;
            ((m & 1) << 5) | ((m & 2) << 3) | ((m & 4) << 4) | ((m & 8) << 4)
        } else {
            MSR_DCD | MSR_DSR | MSR_CTS
        }
    }
}

impl BusDevice for Uart16550 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let dlab = self.lcr & LCR_DLAB != 0;
        let v = match offset {
            RBR if dlab => self.dll,
            RBR => {
                let b = self.rx.pop_front().unwrap_or(0);
                self.update_irq();
                b
            }
            IER if dlab => self.dlm,
            IER => self.ier,
            IIR => {
                let p = self.pending();
                if p == IIR_THRE {
                    // Reading IIR while it reports THR empty clears that condition.
                    self.thre_pending = false;
                    self.update_irq();
                }
                p | if self.fcr & FCR_ENABLE != 0 {
                    IIR_FIFO
                } else {
                    0
                }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let mut v = LSR_THR_EMPTY | LSR_TEMT;
                if !self.rx.is_empty() {
                    v |= LSR_DATA_READY;
                }
                if self.overrun {
                    v |= LSR_OVERRUN;
                    self.overrun = false;
                }
                v
            }
            MSR => self.msr(),
            SCR => self.scr,
            _ => 0xff,
        };
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            THR if dlab => self.dll = v,
            THR => self.transmit(v),
            IER if dlab => self.dlm = v,
            IER => {
                let was = self.ier;
                self.ier = v & 0x0f;
                // Enabling the THR-empty interrupt while THR is empty raises it at once.
                if self.ier & IER_THRE != 0 && was & IER_THRE == 0 {
                    self.thre_pending = true;
                }
            }
            FCR => {
                if v & FCR_CLEAR_RX != 0 {
                    self.rx.clear();
                }
                self.fcr = v & (FCR_ENABLE | 0xc0);
            }
            LCR => self.lcr = v,
            MCR => self.mcr = v & 0x1f,
            LSR | MSR => {} // read-only
            SCR => self.scr = v,
            _ => {}
        }
        self.update_irq();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn uart() -> (Uart16550, Sink, Arc<RecordingIrq>) {
        let sink = Sink::default();
        let irq = RecordingIrq::new();
        (
            Uart16550::new(Some(Box::new(sink.clone())), irq.clone()),
            sink,
            irq,
        )
    }

    fn rd(u: &mut Uart16550, off: u64) -> u8 {
        let mut b = [0u8];
        u.read(off, &mut b);
        b[0]
    }

    #[test]
    fn test_uart_transmits_and_reports_thr_empty() {
        let (mut u, sink, _) = uart();
        assert_ne!(rd(&mut u, LSR) & LSR_THR_EMPTY, 0);
        u.write(THR, b"h");
        u.write(THR, b"i");
        assert_eq!(*sink.0.lock().unwrap(), b"hi");
        assert_eq!(
            rd(&mut u, LSR) & (LSR_THR_EMPTY | LSR_TEMT),
            LSR_THR_EMPTY | LSR_TEMT
        );
    }

    #[test]
    fn test_uart_dlab_selects_divisor_latch() {
        let (mut u, sink, _) = uart();
        u.write(LCR, &[LCR_DLAB | 3]);
        u.write(THR, &[0x01]); // DLL
        u.write(IER, &[0x02]); // DLM
        assert_eq!(rd(&mut u, RBR), 0x01);
        assert_eq!(rd(&mut u, IER), 0x02);
        assert!(sink.0.lock().unwrap().is_empty());
        u.write(LCR, &[3]);
        assert_eq!(rd(&mut u, IER), 0);
        assert_eq!(rd(&mut u, LCR), 3);
    }

    #[test]
    fn test_uart_receive_sets_data_ready_and_irq() {
        let (mut u, _, irq) = uart();
        u.write(IER, &[IER_RDA]);
        assert!(!irq.level());
        u.receive(b"ab");
        assert!(irq.level());
        assert_ne!(rd(&mut u, LSR) & LSR_DATA_READY, 0);
        assert_eq!(rd(&mut u, IIR) & 0x0f, IIR_RDA);
        assert_eq!(rd(&mut u, RBR), b'a');
        assert_eq!(rd(&mut u, RBR), b'b');
        assert_eq!(rd(&mut u, LSR) & LSR_DATA_READY, 0);
        assert!(!irq.level());
        assert_eq!(rd(&mut u, IIR) & 0x0f, IIR_NONE);
    }

    #[test]
    fn test_uart_thre_interrupt_cleared_by_iir_read() {
        let (mut u, _, irq) = uart();
        u.write(IER, &[IER_THRE]);
        assert!(irq.level());
        assert_eq!(rd(&mut u, IIR) & 0x0f, IIR_THRE);
        assert!(!irq.level());
        u.write(THR, b"x");
        assert!(irq.level());
        assert_eq!(irq.edges(), 2);
    }

    #[test]
    fn test_uart_loopback_and_scratch() {
        let (mut u, sink, _) = uart();
        u.write(MCR, &[MCR_LOOP | 0x0b]);
        u.write(THR, b"z");
        assert!(sink.0.lock().unwrap().is_empty());
        assert_eq!(rd(&mut u, RBR), b'z');
        assert_eq!(rd(&mut u, MSR) & 0xf0, MSR_DCD | MSR_DSR | MSR_CTS);
        u.write(SCR, &[0x5a]);
        assert_eq!(rd(&mut u, SCR), 0x5a);
    }

    #[test]
    fn test_uart_fifo_enable_and_overrun() {
        let (mut u, _, _) = uart();
        u.write(FCR, &[FCR_ENABLE]);
        assert_eq!(rd(&mut u, IIR) & IIR_FIFO, IIR_FIFO);
        u.receive(&vec![0u8; RX_CAPACITY + 1]);
        assert_ne!(rd(&mut u, LSR) & LSR_OVERRUN, 0);
        assert_eq!(rd(&mut u, LSR) & LSR_OVERRUN, 0);
        u.write(FCR, &[FCR_ENABLE | FCR_CLEAR_RX]);
        assert_eq!(rd(&mut u, LSR) & LSR_DATA_READY, 0);
    }
}
