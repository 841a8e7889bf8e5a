//! Intel 8042 keyboard controller as wired in PC/AT and PS/2 machines (IBM PS/2 Technical
//! Reference "Keyboard/Auxiliary Device Controller"; the command set of the AT 8042 firmware),
//! with an MF2 keyboard that answers commands but never types, and an auxiliary (mouse) port
//! with nothing plugged in.
//!
//! Enough for an OS's probe and for the reset path: status register, controller RAM (the
//! command byte is RAM byte 0), self test, interface tests, port enable/disable, output port
//! read/write, loopback writes to either output buffer, writes to the aux device (answered
//! with a transmit time-out and 0xFE, which is what a controller reports when no device
//! clocks the byte in), and the keyboard's own command set on port 0x60.
//!
//! A pulse of output line 0 (commands 0xF0-0xFE with bit 0 clear) or an output-port write
//! with bit 0 (system reset, active low) clear resets the machine; vx does not reboot, so, as
//! for the 0xCF9 reset register, the VM stops with `StopReason::PowerOff`.
//!
//! Interrupts: IRQ1 is high while the output buffer holds keyboard/controller data and the
//! command byte enables it; IRQ12 likewise for aux data. A queue stands in for the
//! keyboard's own buffering: when one byte is read the next one is moved in and a fresh edge
//! is raised.
//!
//! Not modelled: scan-code translation (no keystrokes are ever produced, and replies are
//! given in their translated form where it matters: the identify bytes), the A20 gate
//! (output port bit 1 is stored only), typematic timing, parity errors, password commands.
//!
//! Board wiring: one `Arc<Mutex<I8042>>` ([`I8042::new_shared`]) behind two one-port
//! adapters, [`I8042Data`] at `layout::I8042_DATA_PORT` and [`I8042Command`] at
//! `layout::I8042_CMD_PORT` (port 0x61 between them is the PIT's port B); IRQ1 to ISA IRQ
//! `layout::irq::KEYBOARD`, IRQ12 to `layout::irq::MOUSE`.
//!
//! Locking: `IrqLine::set_level` is called with the controller's lock held (i8042 lock, then
//! interrupt-controller lock).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::control::{StopReason, VmControl};
use crate::irq::IrqLine;

/// Offset of the data port (0x60) in the board's data-port adapter.
pub const DATA: u64 = 0;
/// Offset of the status/command port (0x64) in the board's command-port adapter.
pub const COMMAND: u64 = 0;

/// Status bit 0: output buffer full (data waiting at port 0x60).
pub const STS_OBF: u8 = 1 << 0;
/// Status bit 1: input buffer full (never: every write is consumed at once).
pub const STS_IBF: u8 = 1 << 1;
/// Status bit 2: system flag (copy of the command byte's SYS bit).
pub const STS_SYS: u8 = 1 << 2;
/// Status bit 3: the last write was to the command port (1) or the data port (0).
pub const STS_CMD: u8 = 1 << 3;
/// Status bit 4: keyboard not inhibited by the key lock.
pub const STS_UNLOCKED: u8 = 1 << 4;
/// Status bit 5: the byte in the output buffer came from the aux device.
pub const STS_AUX_OBF: u8 = 1 << 5;
/// Status bit 6: time-out (the last byte sent to a device was not accepted).
pub const STS_TIMEOUT: u8 = 1 << 6;

/// Command byte bit 0: IRQ1 on keyboard output buffer full.
pub const CB_KBD_INT: u8 = 1 << 0;
/// Command byte bit 1: IRQ12 on aux output buffer full.
pub const CB_AUX_INT: u8 = 1 << 1;
/// Command byte bit 2: system flag (self test passed).
pub const CB_SYS: u8 = 1 << 2;
/// Command byte bit 4: keyboard interface disabled.
pub const CB_KBD_DISABLE: u8 = 1 << 4;
/// Command byte bit 5: aux interface disabled.
pub const CB_AUX_DISABLE: u8 = 1 << 5;
/// Command byte bit 6: translate scan codes to set 1.
pub const CB_TRANSLATE: u8 = 1 << 6;

/// Command byte at power-on: keyboard interrupt, system flag, translation; aux disabled.
pub const CB_RESET: u8 = CB_KBD_INT | CB_SYS | CB_TRANSLATE | CB_AUX_DISABLE;

/// Output port bit 0: system reset line (active low).
pub const OP_RESET_N: u8 = 1 << 0;
/// Output port bit 1: A20 gate.
pub const OP_A20: u8 = 1 << 1;
/// Output port bit 4: keyboard output buffer full (IRQ1 line).
pub const OP_KBD_OBF: u8 = 1 << 4;
/// Output port bit 5: aux output buffer full (IRQ12 line).
pub const OP_AUX_OBF: u8 = 1 << 5;

/// Controller command: read RAM byte 0 (the command byte); 0x21-0x3f read bytes 1-31.
pub const CMD_READ_RAM: u8 = 0x20;
/// Controller command: write RAM byte 0 (the command byte); 0x61-0x7f write bytes 1-31.
pub const CMD_WRITE_RAM: u8 = 0x60;
/// Controller command: disable the aux interface.
pub const CMD_AUX_DISABLE: u8 = 0xa7;
/// Controller command: enable the aux interface.
pub const CMD_AUX_ENABLE: u8 = 0xa8;
/// Controller command: test the aux interface (0 = no error).
pub const CMD_AUX_TEST: u8 = 0xa9;
/// Controller command: self test (0x55 = passed).
pub const CMD_SELF_TEST: u8 = 0xaa;
/// Controller command: test the keyboard interface (0 = no error).
pub const CMD_KBD_TEST: u8 = 0xab;
/// Controller command: disable the keyboard interface.
pub const CMD_KBD_DISABLE: u8 = 0xad;
/// Controller command: enable the keyboard interface.
pub const CMD_KBD_ENABLE: u8 = 0xae;
/// Controller command: read the input port.
pub const CMD_READ_INPUT: u8 = 0xc0;
/// Controller command: read the output port.
pub const CMD_READ_OUTPUT: u8 = 0xd0;
/// Controller command: write the output port (next data byte).
pub const CMD_WRITE_OUTPUT: u8 = 0xd1;
/// Controller command: put the next data byte in the output buffer as keyboard data.
pub const CMD_WRITE_KBD_OBUF: u8 = 0xd2;
/// Controller command: put the next data byte in the output buffer as aux data.
pub const CMD_WRITE_AUX_OBUF: u8 = 0xd3;
/// Controller command: send the next data byte to the aux device.
pub const CMD_WRITE_AUX: u8 = 0xd4;
/// Controller command: read the test inputs.
pub const CMD_READ_TEST: u8 = 0xe0;
/// Controller command: pulse output line 0 (reset); 0xF0-0xFF pulse the lines whose bit in
/// the low nibble is clear.
pub const CMD_PULSE_RESET: u8 = 0xfe;

/// Controller self-test pass value.
pub const SELF_TEST_OK: u8 = 0x55;

/// Keyboard command: set LEDs (one argument byte).
pub const KBD_SET_LEDS: u8 = 0xed;
/// Keyboard command: echo (answers 0xEE).
pub const KBD_ECHO: u8 = 0xee;
/// Keyboard command: get/set scan code set (one argument byte).
pub const KBD_SCAN_SET: u8 = 0xf0;
/// Keyboard command: identify.
pub const KBD_IDENTIFY: u8 = 0xf2;
/// Keyboard command: set typematic rate (one argument byte).
pub const KBD_TYPEMATIC: u8 = 0xf3;
/// Keyboard command: enable scanning.
pub const KBD_ENABLE: u8 = 0xf4;
/// Keyboard command: disable scanning (and restore defaults).
pub const KBD_DISABLE: u8 = 0xf5;
/// Keyboard command: resend the last byte.
pub const KBD_RESEND: u8 = 0xfe;
/// Keyboard command: reset and self test.
pub const KBD_RESET: u8 = 0xff;

/// Keyboard reply: acknowledge.
pub const KBD_ACK: u8 = 0xfa;
/// Keyboard reply: basic assurance test passed.
pub const KBD_BAT_OK: u8 = 0xaa;
/// Reply standing for "no device answered" (with the time-out status bit).
pub const NO_DEVICE: u8 = 0xfe;

/// What the next byte written to the data port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Nothing: the byte goes to the keyboard.
    None,
    /// Controller RAM byte n.
    WriteRam(u8),
    /// The output port.
    WriteOutput,
    /// The output buffer, as keyboard data.
    KbdObuf,
    /// The output buffer, as aux data.
    AuxObuf,
    /// The aux device.
    Aux,
}

/// What the keyboard expects as the next byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KbdArg {
    /// A command.
    None,
    /// The LED bits.
    Leds,
    /// The scan code set (0 = report the current one).
    ScanSet,
    /// The typematic rate.
    Typematic,
}

/// The controller, its keyboard and its empty aux port.
pub struct I8042 {
    /// Controller RAM; byte 0 is the command byte.
    ram: [u8; 32],
    output_port: u8,
    status_cmd: bool,
    timeout: bool,
    /// Bytes waiting for the output buffer: (value, from the aux port).
    queue: VecDeque<(u8, bool)>,
    /// The byte last read from port 0x60 (what an empty buffer reads as).
    last: u8,
    pending: Pending,
    kbd_arg: KbdArg,
    scanning: bool,
    leds: u8,
    scan_set: u8,
    irq1: Arc<dyn IrqLine>,
    irq12: Arc<dyn IrqLine>,
    irq1_level: bool,
    irq12_level: bool,
    control: Arc<VmControl>,
}

impl std::fmt::Debug for I8042 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I8042")
            .field("command_byte", &self.ram[0])
            .field("output_port", &self.output_port)
            .field("queue", &self.queue)
            .field("pending", &self.pending)
            .finish()
    }
}

/// Most bytes the output queue holds; a guest that never reads cannot grow it forever.
const QUEUE_MAX: usize = 16;

impl I8042 {
    /// A controller raising `irq1`/`irq12` and resetting the machine through `control`.
    pub fn new(irq1: Arc<dyn IrqLine>, irq12: Arc<dyn IrqLine>, control: Arc<VmControl>) -> I8042 {
        let mut ram = [0u8; 32];
        ram[0] = CB_RESET;
        I8042 {
            ram,
            output_port: OP_RESET_N | OP_A20,
            status_cmd: false,
            timeout: false,
            queue: VecDeque::new(),
            last: 0,
            pending: Pending::None,
            kbd_arg: KbdArg::None,
            scanning: true,
            leds: 0,
            scan_set: 2,
            irq1,
            irq12,
            irq1_level: false,
            irq12_level: false,
            control,
        }
    }

    /// The same, wrapped for sharing between [`I8042Data`] and [`I8042Command`].
    pub fn new_shared(
        irq1: Arc<dyn IrqLine>,
        irq12: Arc<dyn IrqLine>,
        control: Arc<VmControl>,
    ) -> Arc<std::sync::Mutex<I8042>> {
        Arc::new(std::sync::Mutex::new(I8042::new(irq1, irq12, control)))
    }

    /// The command byte (controller RAM byte 0).
    pub fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    /// The keyboard LED bits last set (bit 0 scroll, 1 num, 2 caps lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// Whether the keyboard is scanning (enabled with 0xF4, disabled with 0xF5).
    pub fn scanning(&self) -> bool {
        self.scanning
    }

    /// The status register (port 0x64 read).
    pub fn status(&self) -> u8 {
        let mut s = STS_UNLOCKED;
        if let Some(&(_, aux)) = self.queue.front() {
            s |= STS_OBF;
            if aux {
                s |= STS_AUX_OBF;
            }
        }
        if self.ram[0] & CB_SYS != 0 {
            s |= STS_SYS;
        }
        if self.status_cmd {
            s |= STS_CMD;
        }
        if self.timeout {
            s |= STS_TIMEOUT;
        }
        s
    }

    /// Queue a byte for the output buffer.
    fn push(&mut self, v: u8, aux: bool) {
        if self.queue.len() < QUEUE_MAX {
            self.queue.push_back((v, aux));
        }
        self.update_irqs();
    }

    /// Drive IRQ1/IRQ12 from the byte at the head of the queue and the command byte.
    fn update_irqs(&mut self) {
        let (kbd, aux) = match self.queue.front() {
            Some(&(_, false)) => (self.ram[0] & CB_KBD_INT != 0, false),
            Some(&(_, true)) => (false, self.ram[0] & CB_AUX_INT != 0),
            None => (false, false),
        };
        if kbd != self.irq1_level {
            self.irq1_level = kbd;
            self.irq1.set_level(kbd);
        }
        if aux != self.irq12_level {
            self.irq12_level = aux;
            self.irq12.set_level(aux);
        }
    }

    /// Read the data port (0x60): take the byte in the output buffer.
    pub fn read_data(&mut self) -> u8 {
        if let Some((v, _)) = self.queue.pop_front() {
            self.last = v;
            // Drop the lines so the next queued byte (if any) raises a fresh edge.
            if self.irq1_level {
                self.irq1_level = false;
                self.irq1.set_level(false);
            }
            if self.irq12_level {
                self.irq12_level = false;
                self.irq12.set_level(false);
            }
            self.timeout = false;
            self.update_irqs();
        }
        self.last
    }

    /// Write the command port (0x64).
    pub fn write_command(&mut self, cmd: u8) {
        self.status_cmd = true;
        self.pending = Pending::None;
        match cmd {
            0x20..=0x3f => {
                let v = self.ram[usize::from(cmd - CMD_READ_RAM)];
                self.push(v, false);
            }
            0x60..=0x7f => self.pending = Pending::WriteRam(cmd - CMD_WRITE_RAM),
            CMD_AUX_DISABLE => self.set_command_byte(self.ram[0] | CB_AUX_DISABLE),
            CMD_AUX_ENABLE => self.set_command_byte(self.ram[0] & !CB_AUX_DISABLE),
            CMD_AUX_TEST | CMD_KBD_TEST => self.push(0x00, false),
            CMD_SELF_TEST => {
                // The self test leaves the system flag set, as after power-on.
                self.set_command_byte(self.ram[0] | CB_SYS);
                self.push(SELF_TEST_OK, false);
            }
            CMD_KBD_DISABLE => self.set_command_byte(self.ram[0] | CB_KBD_DISABLE),
            CMD_KBD_ENABLE => self.set_command_byte(self.ram[0] & !CB_KBD_DISABLE),
            // Input port: bit 7 keyboard not inhibited, bit 5 no manufacturing jumper.
            CMD_READ_INPUT => self.push(0xa0, false),
            CMD_READ_OUTPUT => {
                let mut v = self.output_port & !(OP_KBD_OBF | OP_AUX_OBF);
                match self.queue.front() {
                    Some(&(_, false)) => v |= OP_KBD_OBF,
                    Some(&(_, true)) => v |= OP_AUX_OBF,
                    None => {}
                }
                self.push(v, false);
            }
            CMD_WRITE_OUTPUT => self.pending = Pending::WriteOutput,
            CMD_WRITE_KBD_OBUF => self.pending = Pending::KbdObuf,
            CMD_WRITE_AUX_OBUF => self.pending = Pending::AuxObuf,
            CMD_WRITE_AUX => self.pending = Pending::Aux,
            CMD_READ_TEST => self.push(0x00, false),
            0xf0..=0xff => {
                if cmd & 1 == 0 {
                    tracing::info!("i8042: reset line pulsed; stopping the VM");
                    self.control.request_stop(StopReason::PowerOff);
                }
            }
            _ => tracing::debug!("i8042: unsupported controller command {cmd:#04x} ignored"),
        }
    }

    /// Write the data port (0x60).
    pub fn write_data(&mut self, v: u8) {
        self.status_cmd = false;
        let pending = std::mem::replace(&mut self.pending, Pending::None);
        match pending {
            Pending::WriteRam(0) => self.set_command_byte(v),
            Pending::WriteRam(n) => self.ram[usize::from(n & 31)] = v,
            Pending::WriteOutput => {
                self.output_port = v;
                if v & OP_RESET_N == 0 {
                    tracing::info!("i8042: output port reset bit cleared; stopping the VM");
                    self.control.request_stop(StopReason::PowerOff);
                }
            }
            Pending::KbdObuf => self.push(v, false),
            Pending::AuxObuf => self.push(v, true),
            Pending::Aux => {
                // Nothing is plugged into the aux port: the controller gives up waiting for
                // the device to clock the byte in and reports a transmit time-out.
                self.timeout = true;
                self.push(NO_DEVICE, true);
            }
            Pending::None => {
                self.timeout = false;
                self.keyboard_byte(v);
            }
        }
    }

    /// Write the command byte, updating the interrupt lines it gates.
    fn set_command_byte(&mut self, v: u8) {
        self.ram[0] = v;
        self.update_irqs();
    }

    /// The keyboard receives `v`.
    fn keyboard_byte(&mut self, v: u8) {
        let arg = std::mem::replace(&mut self.kbd_arg, KbdArg::None);
        match arg {
            KbdArg::Leds => {
                self.leds = v & 7;
                self.push(KBD_ACK, false);
                return;
            }
            KbdArg::Typematic => {
                self.push(KBD_ACK, false);
                return;
            }
            KbdArg::ScanSet => {
                self.push(KBD_ACK, false);
                match v {
                    0 => self.push(self.scan_set, false),
                    1..=3 => self.scan_set = v,
                    _ => {}
                }
                return;
            }
            KbdArg::None => {}
        }
        match v {
            KBD_SET_LEDS => {
                self.kbd_arg = KbdArg::Leds;
                self.push(KBD_ACK, false);
            }
            KBD_ECHO => self.push(KBD_ECHO, false),
            KBD_SCAN_SET => {
                self.kbd_arg = KbdArg::ScanSet;
                self.push(KBD_ACK, false);
            }
            KBD_IDENTIFY => {
                self.push(KBD_ACK, false);
                self.push(0xab, false);
                // An MF2 keyboard's second ID byte is 0x83; the controller's translation
                // turns it into 0x41.
                let second = if self.ram[0] & CB_TRANSLATE != 0 {
                    0x41
                } else {
                    0x83
                };
                self.push(second, false);
            }
            KBD_TYPEMATIC => {
                self.kbd_arg = KbdArg::Typematic;
                self.push(KBD_ACK, false);
            }
            KBD_ENABLE => {
                self.scanning = true;
                self.push(KBD_ACK, false);
            }
            KBD_DISABLE => {
                self.scanning = false;
                self.push(KBD_ACK, false);
            }
            KBD_RESEND => {
                let last = self.last;
                self.push(last, false);
            }
            KBD_RESET => {
                self.scanning = true;
                self.leds = 0;
                self.scan_set = 2;
                self.push(KBD_ACK, false);
                self.push(KBD_BAT_OK, false);
            }
            _ => self.push(KBD_ACK, false),
        }
    }
}

/// Bus adapter for port 0x60 (data).
#[derive(Debug, Clone)]
pub struct I8042Data(pub Arc<std::sync::Mutex<I8042>>);

/// Bus adapter for port 0x64 (status read, command write).
#[derive(Debug, Clone)]
pub struct I8042Command(pub Arc<std::sync::Mutex<I8042>>);

impl BusDevice for I8042Data {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if offset == DATA
            && let Some(d) = data.first_mut()
        {
            *d = self.0.lock().unwrap_or_else(|p| p.into_inner()).read_data();
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == DATA
            && let Some(&v) = data.first()
        {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_data(v);
        }
    }
}

impl BusDevice for I8042Command {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if offset == COMMAND
            && let Some(d) = data.first_mut()
        {
            *d = self.0.lock().unwrap_or_else(|p| p.into_inner()).status();
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND
            && let Some(&v) = data.first()
        {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_command(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;

    struct Rig {
        kbc: I8042,
        irq1: Arc<RecordingIrq>,
        irq12: Arc<RecordingIrq>,
        control: Arc<VmControl>,
    }

    fn rig() -> Rig {
        let irq1 = RecordingIrq::new();
        let irq12 = RecordingIrq::new();
        let control = Arc::new(VmControl::new());
        let kbc = I8042::new(irq1.clone(), irq12.clone(), control.clone());
        Rig {
            kbc,
            irq1,
            irq12,
            control,
        }
    }

    /// Read every byte waiting in the output buffer.
    fn drain(k: &mut I8042) -> Vec<u8> {
        let mut v = Vec::new();
        while k.status() & STS_OBF != 0 {
            v.push(k.read_data());
        }
        v
    }

    #[test]
    fn test_i8042_self_test_and_interface_tests() {
        let mut r = rig();
        assert_eq!(r.kbc.status() & STS_OBF, 0);
        r.kbc.write_command(CMD_SELF_TEST);
        assert_eq!(r.kbc.status() & (STS_OBF | STS_CMD), STS_OBF | STS_CMD);
        assert_eq!(drain(&mut r.kbc), vec![SELF_TEST_OK]);
        r.kbc.write_command(CMD_KBD_TEST);
        assert_eq!(drain(&mut r.kbc), vec![0]);
        r.kbc.write_command(CMD_AUX_TEST);
        assert_eq!(drain(&mut r.kbc), vec![0]);
    }

    #[test]
    fn test_i8042_command_byte_read_write() {
        let mut r = rig();
        r.kbc.write_command(CMD_READ_RAM);
        assert_eq!(drain(&mut r.kbc), vec![CB_RESET]);
        r.kbc.write_command(CMD_WRITE_RAM);
        r.kbc.write_data(0x47);
        assert_eq!(
            r.kbc.status() & STS_CMD,
            0,
            "last write went to the data port"
        );
        r.kbc.write_command(CMD_READ_RAM);
        assert_eq!(drain(&mut r.kbc), vec![0x47]);
        assert_eq!(r.kbc.status() & STS_SYS, STS_SYS);
        // Other RAM bytes.
        r.kbc.write_command(0x65);
        r.kbc.write_data(0x9c);
        r.kbc.write_command(0x25);
        assert_eq!(drain(&mut r.kbc), vec![0x9c]);
    }

    #[test]
    fn test_i8042_enable_disable_ports() {
        let mut r = rig();
        r.kbc.write_command(CMD_KBD_DISABLE);
        assert_ne!(r.kbc.command_byte() & CB_KBD_DISABLE, 0);
        r.kbc.write_command(CMD_KBD_ENABLE);
        assert_eq!(r.kbc.command_byte() & CB_KBD_DISABLE, 0);
        r.kbc.write_command(CMD_AUX_ENABLE);
        assert_eq!(r.kbc.command_byte() & CB_AUX_DISABLE, 0);
        r.kbc.write_command(CMD_AUX_DISABLE);
        assert_ne!(r.kbc.command_byte() & CB_AUX_DISABLE, 0);
    }

    #[test]
    fn test_i8042_keyboard_reset_and_identify() {
        let mut r = rig();
        r.kbc.write_data(KBD_RESET);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK, KBD_BAT_OK]);
        r.kbc.write_data(KBD_IDENTIFY);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK, 0xab, 0x41]);
        // Without translation the raw MF2 ID.
        r.kbc.write_command(CMD_WRITE_RAM);
        r.kbc.write_data(CB_SYS);
        r.kbc.write_data(KBD_IDENTIFY);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK, 0xab, 0x83]);
    }

    #[test]
    fn test_i8042_keyboard_commands_ack() {
        let mut r = rig();
        r.kbc.write_data(KBD_DISABLE);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK]);
        assert!(!r.kbc.scanning());
        r.kbc.write_data(KBD_ENABLE);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK]);
        assert!(r.kbc.scanning());
        r.kbc.write_data(KBD_SET_LEDS);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK]);
        r.kbc.write_data(0x05);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK]);
        assert_eq!(r.kbc.leds(), 0x05);
        r.kbc.write_data(KBD_SCAN_SET);
        r.kbc.write_data(0);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK, KBD_ACK, 2]);
        r.kbc.write_data(KBD_ECHO);
        assert_eq!(drain(&mut r.kbc), vec![KBD_ECHO]);
        r.kbc.write_data(0xe8); // unknown: still acknowledged
        assert_eq!(drain(&mut r.kbc), vec![KBD_ACK]);
    }

    #[test]
    fn test_i8042_aux_write_without_mouse_times_out() {
        let mut r = rig();
        r.kbc.write_command(CMD_WRITE_AUX);
        r.kbc.write_data(0xff);
        let s = r.kbc.status();
        assert_eq!(
            s & (STS_OBF | STS_AUX_OBF | STS_TIMEOUT),
            STS_OBF | STS_AUX_OBF | STS_TIMEOUT
        );
        assert_eq!(r.kbc.read_data(), NO_DEVICE);
        assert_eq!(r.kbc.status() & (STS_OBF | STS_TIMEOUT), 0);
    }

    #[test]
    fn test_i8042_loopback_to_output_buffers() {
        let mut r = rig();
        r.kbc.write_command(CMD_WRITE_AUX_OBUF);
        r.kbc.write_data(0x5a);
        assert_eq!(r.kbc.status() & STS_AUX_OBF, STS_AUX_OBF);
        assert_eq!(r.kbc.read_data(), 0x5a);
        r.kbc.write_command(CMD_WRITE_KBD_OBUF);
        r.kbc.write_data(0x3c);
        assert_eq!(r.kbc.status() & (STS_OBF | STS_AUX_OBF), STS_OBF);
        assert_eq!(r.kbc.read_data(), 0x3c);
        // An empty buffer reads as the last byte.
        assert_eq!(r.kbc.read_data(), 0x3c);
    }

    #[test]
    fn test_i8042_irqs_follow_command_byte() {
        let mut r = rig();
        // Keyboard interrupt enabled at reset: a reply raises IRQ1.
        r.kbc.write_data(KBD_RESET);
        assert!(r.irq1.level());
        assert_eq!(r.irq1.edges(), 1);
        r.kbc.read_data();
        // The second byte arrives with a fresh edge.
        assert!(r.irq1.level());
        assert_eq!(r.irq1.edges(), 2);
        r.kbc.read_data();
        assert!(!r.irq1.level());
        // Aux data with CB_AUX_INT raises IRQ12 only.
        r.kbc.write_command(CMD_WRITE_RAM);
        r.kbc.write_data(CB_AUX_INT | CB_SYS);
        r.kbc.write_command(CMD_WRITE_AUX_OBUF);
        r.kbc.write_data(0x11);
        assert!(r.irq12.level());
        assert!(!r.irq1.level());
        r.kbc.read_data();
        assert!(!r.irq12.level());
        // Keyboard data with CB_KBD_INT clear raises nothing.
        r.kbc.write_data(KBD_ECHO);
        assert!(!r.irq1.level());
        assert_eq!(r.kbc.status() & STS_OBF, STS_OBF);
    }

    #[test]
    fn test_i8042_output_port_and_reset() {
        let mut r = rig();
        r.kbc.write_command(CMD_READ_OUTPUT);
        assert_eq!(drain(&mut r.kbc), vec![OP_RESET_N | OP_A20]);
        r.kbc.write_command(CMD_WRITE_OUTPUT);
        r.kbc.write_data(OP_RESET_N);
        assert_eq!(r.control.stop_reason(), None);
        r.kbc.write_command(CMD_READ_OUTPUT);
        assert_eq!(drain(&mut r.kbc), vec![OP_RESET_N]);
        r.kbc.write_command(CMD_WRITE_OUTPUT);
        r.kbc.write_data(OP_A20);
        assert_eq!(r.control.stop_reason(), Some(StopReason::PowerOff));
    }

    #[test]
    fn test_i8042_pulse_reset_line() {
        let mut r = rig();
        r.kbc.write_command(0xff); // pulses nothing
        assert_eq!(r.control.stop_reason(), None);
        r.kbc.write_command(CMD_PULSE_RESET);
        assert_eq!(r.control.stop_reason(), Some(StopReason::PowerOff));
    }

    #[test]
    fn test_i8042_queue_is_bounded() {
        let mut r = rig();
        for _ in 0..100 {
            r.kbc.write_data(KBD_ECHO);
        }
        assert_eq!(drain(&mut r.kbc).len(), QUEUE_MAX);
    }

    #[test]
    fn test_i8042_bus_adapters() {
        let r = rig();
        let shared = Arc::new(std::sync::Mutex::new(r.kbc));
        let mut cmd = I8042Command(shared.clone());
        let mut data = I8042Data(shared);
        cmd.write(COMMAND, &[CMD_SELF_TEST]);
        let mut b = [0u8];
        cmd.read(COMMAND, &mut b);
        assert_eq!(b[0] & STS_OBF, STS_OBF);
        data.read(DATA, &mut b);
        assert_eq!(b[0], SELF_TEST_OK);
    }
}
