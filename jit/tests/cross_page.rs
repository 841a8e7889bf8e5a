//! An instruction that crosses a page boundary (SDM Vol. 2A §2.1) runs as an interpreter
//! fallback decoded from both pages (`jit::cross_page`): its writes are known, so a store
//! into translated code invalidates exactly that code (the patched loop must see the new
//! immediate) and the fallback is counted under its real mnemonic, not as "invalid".

mod common;

use common::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop whose page-crossing `mov byte [rip+d], 5` patches the immediate of the loop's
    /// own `mov eax, 1`: iterations add 1, then 5, then 5.
    fn program() -> Vec<u8> {
        let mut c = vec![0x90u8; 0x1010];
        let mut put = |at: usize, b: &[u8]| c[at..at + b.len()].copy_from_slice(b);
        put(0, &[0x41, 0xbd, 3, 0, 0, 0]); // mov r13d, 3
        put(6, &[0xb8, 1, 0, 0, 0]); // top: mov eax, 1
        put(11, &[0x01, 0xc3]); // add ebx, eax
        let rel: i32 = 0xffd - (13 + 5);
        put(13, &[0xe9]); // jmp 0xffd
        put(14, &rel.to_le_bytes());
        // 0xffd: mov byte [rip + d], 5 (7 bytes, ends at 0x1004) targets offset 7.
        let d = 7i32 - 0x1004;
        put(0xffd, &[0xc6, 0x05]);
        put(0xfff, &d.to_le_bytes());
        put(0x1003, &[5]);
        put(0x1004, &[0x41, 0xff, 0xcd]); // dec r13d
        let back = 6i32 - (0x1007 + 6);
        put(0x1007, &[0x0f, 0x85]); // jnz top
        put(0x1009, &back.to_le_bytes());
        put(0x100d, &[0xf4]); // hlt
        c
    }

    #[test]
    fn test_cross_page_store_into_code_is_seen() {
        let code = program();
        let mut st = long_mode_state();
        st.gpr[3] = 0;
        let (a, _) = run_interp(guest(&code, &[]), &st);
        let (b, _, v) = run_jit(guest(&code, &[]), &st);
        assert_eq!(a.gpr[3], 11, "1 + 5 + 5 on the interpreter");
        assert_eq!(diff_states(&a, &b), Vec::<String>::new());
        let stats = cpu::Vcpu::stats(&v).counters;
        let get = |name: &str| stats.iter().find(|(k, _)| k == name).map_or(0, |c| c.1);
        assert_eq!(get("fallback invalid"), 0);
        assert_eq!(get("fallback mov"), 3);
    }
}
