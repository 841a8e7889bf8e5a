//! The second benchmark ROM, "crc-sieve": a table-driven CRC-32 over an LCG-filled 1 MiB
//! buffer (several passes) and a sieve of Eratosthenes over a byte array, with the host-side
//! reference model that computes the checksum and instruction count the guest must produce.
//!
//! Same image, boot path (real -> protected -> long mode, identity 2 MiB pages) and exit
//! protocol as the first ROM (`rom.rs`, whose pieces it reuses). The 64-bit code:
//!
//! 1. builds the 256-entry CRC-32 table (IEEE, reflected polynomial 0xEDB88320) at 64 KiB,
//!    bit by bit with a data-dependent branch;
//! 2. runs `passes` passes, each filling the 1 MiB buffer at 1 MiB with a 32-bit LCG
//!    (dword stores), computing its CRC-32 a byte at a time through the table (`movzx`,
//!    `xor`, `shr`, a table load) and folding the CRC into the checksum (`imul`);
//! 3. sieves a byte array of `SIEVE_N` flags at 2 MiB (qword initialisation, byte stores
//!    with a stride of p for every prime p up to sqrt(SIEVE_N)), counts the primes a byte at
//!    a time and folds the count into the checksum.
//!
//! Only mov, movzx, shifts, xor, and, add, imul, inc/dec, cmp and jcc run in the workload:
//! no x87, SSE or string instructions (the JIT would leave those to the interpreter).

use iced_x86::IcedError;
use iced_x86::code_asm::*;

use crate::rom::{self, BUF, H0, LM64_OFF, MIX_M, ROM_BASE, Reference};

/// The CRC table: 256 dwords.
const TABLE: u32 = 0x1_0000;
/// The sieve's flag bytes start at 2 MiB.
const SIEVE: u32 = 0x20_0000;
/// Sieve limit: primes below this are counted (283,146 of them). A multiple of 8.
pub const SIEVE_N: u32 = 4_000_000;
/// Buffer size in bytes (1 MiB).
const BUF_BYTES: u32 = 1 << 20;
/// The reflected CRC-32 (IEEE 802.3) polynomial.
const POLY: u32 = 0xedb8_8320;
/// 32-bit LCG (Numerical Recipes) and its seed.
const LCG_A: u32 = 1_664_525;
const LCG_C: u32 = 1_013_904_223;
const SEED0: u32 = 0x2545_f491;

/// h = (h ^ v) * MIX_M; h ^= h >> 29 (6 guest instructions with the `mov` of v, 5 without).
fn fold(h: u64, v: u64) -> u64 {
    let h = (h ^ v).wrapping_mul(MIX_M);
    h ^ (h >> 29)
}

/// Run the workload on the host: the checksum the guest must print and its instruction count.
pub fn reference(passes: u32) -> Reference {
    // 1. Table: per entry mov, mov, 8 x (shr, jnc, [xor], dec, jnz), store, inc, cmp, jne.
    let mut ins: u64 = 1; // xor ecx, ecx
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        ins += 2 + 4;
        for _ in 0..8 {
            ins += 4;
            if c & 1 != 0 {
                c = (c >> 1) ^ POLY;
                ins += 1;
            } else {
                c >>= 1;
            }
        }
        *t = c;
    }
    // 2. Passes.
    let mut h = H0;
    let mut x = SEED0;
    let mut buf = vec![0u8; BUF_BYTES as usize];
    let dwords = u64::from(BUF_BYTES / 4);
    ins += 2; // the final pass test
    for _ in 0..passes {
        ins += 2 // pass test
            + 2 + 9 * dwords + 1 // fill
            + 3 + 7 * u64::from(BUF_BYTES) + 1 // CRC
            + 6 // fold
            + 2; // next pass
        for d in buf.chunks_exact_mut(4) {
            x = x.wrapping_mul(LCG_A).wrapping_add(LCG_C);
            d.copy_from_slice(&(x ^ (x >> 16)).to_le_bytes());
        }
        let mut crc = u32::MAX;
        for &b in &buf {
            crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        h = fold(h, u64::from(!crc));
    }
    // 3. Sieve: initialise, clear 0 and 1, strike multiples, count.
    let n = SIEVE_N as usize;
    let mut sieve = vec![1u8; n];
    sieve[0] = 0;
    sieve[1] = 0;
    ins += 3 + 4 * u64::from(SIEVE_N / 8) + 2 + 1;
    let mut p = 2usize;
    loop {
        ins += 4; // mov, imul, cmp, jae
        if p * p >= n {
            break;
        }
        ins += 2 + 2; // cmp byte, je; inc, jmp
        if sieve[p] != 0 {
            let mut j = p * p;
            while j < n {
                sieve[j] = 0;
                j += p;
                ins += 4;
            }
        }
        p += 1;
    }
    let count = sieve.iter().filter(|&&f| f != 0).count() as u64;
    ins += 2 + 5 * u64::from(SIEVE_N) + 5;
    h = fold(h, count);
    Reference {
        checksum: h,
        loop_instructions: ins,
        // 6 register set-up instructions.
        fixed_instructions: 6,
    }
}

/// Build the crc-sieve ROM for `passes` CRC passes; it embeds the expected checksum.
pub fn build(passes: u32) -> Result<Vec<u8>, IcedError> {
    let expected = reference(passes).checksum;
    rom::image(&long_mode(passes, expected)?)
}

/// 64-bit code. Registers: r15 checksum, r14d LCG state, r13d pass, rdi buffer, rbx table,
/// r9 mixing multiplier, rsi sieve base (step 3).
fn long_mode(passes: u32, expected: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    rom::emit_prologue(&mut a)?;
    a.mov(r15, H0)?;
    a.mov(r14d, SEED0)?;
    a.xor(r13d, r13d)?;
    a.mov(edi, BUF)?;
    a.mov(ebx, TABLE)?;
    a.mov(r9, MIX_M)?;

    // 1. CRC table: c = i; 8 times: c = c & 1 ? (c >> 1) ^ POLY : c >> 1.
    a.xor(ecx, ecx)?;
    let mut tbl = a.create_label();
    let mut bit = a.create_label();
    let mut skip = a.create_label();
    a.set_label(&mut tbl)?;
    a.mov(eax, ecx)?;
    a.mov(edx, 8u32)?;
    a.set_label(&mut bit)?;
    a.shr(eax, 1)?;
    a.jnc(skip)?;
    a.xor(eax, POLY as i32)?;
    a.set_label(&mut skip)?;
    a.dec(edx)?;
    a.jnz(bit)?;
    a.mov(dword_ptr(rbx + rcx * 4), eax)?;
    a.inc(ecx)?;
    a.cmp(ecx, 256)?;
    a.jne(tbl)?;

    // 2. Passes: fill, CRC, fold.
    let mut pass = a.create_label();
    let mut sieve = a.create_label();
    a.set_label(&mut pass)?;
    a.cmp(r13d, passes)?;
    a.jae(sieve)?;
    // Fill: x = x * A + C (mod 2^32); buf32[i] = x ^ (x >> 16).
    a.mov(eax, r14d)?;
    a.xor(ecx, ecx)?;
    let mut fill = a.create_label();
    a.set_label(&mut fill)?;
    a.imul_3(eax, eax, LCG_A as i32)?;
    a.add(eax, LCG_C as i32)?;
    a.mov(edx, eax)?;
    a.shr(edx, 16)?;
    a.xor(edx, eax)?;
    a.mov(dword_ptr(rdi + rcx * 4), edx)?;
    a.inc(ecx)?;
    a.cmp(ecx, (BUF_BYTES / 4) as i32)?;
    a.jne(fill)?;
    a.mov(r14d, eax)?;
    // CRC: crc = table[(crc ^ b) & 0xff] ^ (crc >> 8), crc in edx.
    a.mov(edx, u32::MAX)?;
    a.mov(rsi, rdi)?;
    a.mov(ecx, BUF_BYTES)?;
    let mut crc = a.create_label();
    a.set_label(&mut crc)?;
    a.movzx(eax, byte_ptr(rsi))?;
    a.xor(al, dl)?;
    a.shr(edx, 8)?;
    a.xor(edx, dword_ptr(rbx + rax * 4))?;
    a.inc(rsi)?;
    a.dec(ecx)?;
    a.jnz(crc)?;
    a.xor(edx, -1)?;
    // Fold: h = (h ^ crc) * M; h ^= h >> 29.
    a.mov(eax, edx)?;
    a.xor(r15, rax)?;
    a.imul_2(r15, r9)?;
    a.mov(rax, r15)?;
    a.shr(rax, 29)?;
    a.xor(r15, rax)?;
    a.inc(r13d)?;
    a.jmp(pass)?;

    // 3. Sieve.
    a.set_label(&mut sieve)?;
    a.mov(esi, SIEVE)?;
    a.mov(rax, 0x0101_0101_0101_0101u64)?;
    a.xor(ecx, ecx)?;
    let mut sinit = a.create_label();
    a.set_label(&mut sinit)?;
    a.mov(qword_ptr(rsi + rcx * 8), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, (SIEVE_N / 8) as i32)?;
    a.jne(sinit)?;
    a.mov(byte_ptr(rsi), 0)?;
    a.mov(byte_ptr(rsi + 1), 0)?;
    a.mov(ecx, 2u32)?;
    let mut outer = a.create_label();
    let mut mark = a.create_label();
    let mut next = a.create_label();
    let mut count = a.create_label();
    a.set_label(&mut outer)?;
    a.mov(eax, ecx)?;
    a.imul_2(eax, ecx)?;
    a.cmp(eax, SIEVE_N as i32)?;
    a.jae(count)?;
    a.cmp(byte_ptr(rsi + rcx), 0)?;
    a.je(next)?;
    a.set_label(&mut mark)?;
    a.mov(byte_ptr(rsi + rax), 0)?;
    a.add(eax, ecx)?;
    a.cmp(eax, SIEVE_N as i32)?;
    a.jb(mark)?;
    a.set_label(&mut next)?;
    a.inc(ecx)?;
    a.jmp(outer)?;
    // Count the flags, then fold the count in.
    a.set_label(&mut count)?;
    a.xor(edx, edx)?;
    a.xor(ecx, ecx)?;
    let mut cnt = a.create_label();
    a.set_label(&mut cnt)?;
    a.movzx(eax, byte_ptr(rsi + rcx))?;
    a.add(edx, eax)?;
    a.inc(ecx)?;
    a.cmp(ecx, SIEVE_N as i32)?;
    a.jne(cnt)?;
    a.xor(r15, rdx)?;
    a.imul_2(r15, r9)?;
    a.mov(rax, r15)?;
    a.shr(rax, 29)?;
    a.xor(r15, rax)?;

    rom::emit_report(&mut a, expected)?;
    a.assemble(ROM_BASE + LM64_OFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_crc_table_matches_known_crc() {
        // CRC-32 of "123456789" is 0xCBF43926, through the same table the model builds.
        let mut table = [0u32; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *t = c;
        }
        let crc = !b"123456789".iter().fold(u32::MAX, |c, &b| {
            table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
        });
        assert_eq!(crc, 0xcbf4_3926);
    }

    #[test]
    fn test_rom_builds_and_depends_on_passes() {
        assert_eq!(build(1).expect("assemble").len(), rom::ROM_SIZE);
        assert_ne!(reference(1).checksum, reference(2).checksum);
    }
}
