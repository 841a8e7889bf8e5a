//! A tiny ACPI Machine Language encoder (ACPI 6.5 §20.2 "AML Grammar Definition"): name
//! strings, package lengths, integer constants, packages and `Name` objects: as much as
//! vx's DSDT needs, each function emitting the bytes of one grammar rule.

/// NameOp: `DefName := NameOp NameString DataRefObject` (§20.2.5.1).
pub const NAME_OP: u8 = 0x08;
/// PackageOp: `DefPackage := PackageOp PkgLength NumElements PackageElementList` (§20.2.5.4).
pub const PACKAGE_OP: u8 = 0x12;
/// ZeroOp: the constant 0 (§20.2.3).
pub const ZERO_OP: u8 = 0x00;
/// OneOp: the constant 1.
pub const ONE_OP: u8 = 0x01;
/// BytePrefix: an 8-bit constant follows.
pub const BYTE_PREFIX: u8 = 0x0a;
/// WordPrefix: a 16-bit constant follows.
pub const WORD_PREFIX: u8 = 0x0b;
/// DWordPrefix: a 32-bit constant follows.
pub const DWORD_PREFIX: u8 = 0x0c;
/// QWordPrefix: a 64-bit constant follows (needs a DSDT of revision 2 or more).
pub const QWORD_PREFIX: u8 = 0x0e;
/// RootChar `\`: the name is absolute (§20.2.2).
pub const ROOT_CHAR: u8 = 0x5c;
/// DualNamePrefix: two NameSegs follow.
pub const DUAL_NAME_PREFIX: u8 = 0x2e;
/// MultiNamePrefix: a count and that many NameSegs follow.
pub const MULTI_NAME_PREFIX: u8 = 0x2f;

/// Largest value a PkgLength can encode (28 bits).
pub const PKG_LENGTH_MAX: usize = (1 << 28) - 1;

/// A NameSeg: up to four characters (A-Z, 0-9, `_`; the first not a digit), padded with
/// `_` as ASL does. Characters outside that set are replaced by `_`.
pub fn name_seg(s: &str) -> [u8; 4] {
    let mut seg = [b'_'; 4];
    for (slot, c) in seg.iter_mut().zip(s.bytes()) {
        *slot = match c {
            b'A'..=b'Z' | b'_' | b'0'..=b'9' => c,
            b'a'..=b'z' => c.to_ascii_uppercase(),
            _ => b'_',
        };
    }
    seg
}

/// A NameString: an optional leading `\` and dot-separated NameSegs (`\_SB_.PCI0`).
pub fn name_string(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let rest = match path.strip_prefix('\\') {
        Some(r) => {
            out.push(ROOT_CHAR);
            r
        }
        None => path,
    };
    let segs: Vec<[u8; 4]> = rest
        .split('.')
        .filter(|s| !s.is_empty())
        .map(name_seg)
        .collect();
    match segs.len() {
        // NullName: the root itself (`\`) or nothing.
        0 => out.push(0x00),
        1 => {}
        2 => out.push(DUAL_NAME_PREFIX),
        n => {
            out.push(MULTI_NAME_PREFIX);
            out.push(u8::try_from(n).unwrap_or(u8::MAX));
        }
    }
    for s in segs.iter().take(255) {
        out.extend_from_slice(s);
    }
    out
}

/// A PkgLength for `content` bytes following it: the encoded length counts itself, so a
/// 1-byte encoding covers up to 63 bytes in total and longer ones spill into 1-3 more
/// bytes (lead byte bits 7:6 = extra byte count, bits 3:0 = low nibble). Returns `None`
/// past [`PKG_LENGTH_MAX`].
pub fn pkg_length(content: usize) -> Option<Vec<u8>> {
    if content < 0x3f {
        return Some(vec![(content + 1) as u8]);
    }
    for extra in 1..=3usize {
        let total = content + 1 + extra;
        if total < (1 << (4 + 8 * extra)) && total <= PKG_LENGTH_MAX {
            let mut out = vec![((extra as u8) << 6) | (total & 0xf) as u8];
            for i in 0..extra {
                out.push((total >> (4 + 8 * i)) as u8);
            }
            return Some(out);
        }
    }
    None
}

/// The shortest constant encoding of `v` (ZeroOp, OneOp or a Byte/Word/DWord/QWord
/// prefix).
pub fn integer(v: u64) -> Vec<u8> {
    match v {
        0 => vec![ZERO_OP],
        1 => vec![ONE_OP],
        2..=0xff => vec![BYTE_PREFIX, v as u8],
        0x100..=0xffff => {
            let mut out = vec![WORD_PREFIX];
            out.extend_from_slice(&(v as u16).to_le_bytes());
            out
        }
        0x1_0000..=0xffff_ffff => {
            let mut out = vec![DWORD_PREFIX];
            out.extend_from_slice(&(v as u32).to_le_bytes());
            out
        }
        _ => {
            let mut out = vec![QWORD_PREFIX];
            out.extend_from_slice(&v.to_le_bytes());
            out
        }
    }
}

/// `Package () { elements }` with at most 255 elements (extra ones are dropped).
pub fn package(elements: &[Vec<u8>]) -> Vec<u8> {
    let elements = &elements[..elements.len().min(255)];
    let mut body = vec![elements.len() as u8];
    for e in elements {
        body.extend_from_slice(e);
    }
    let mut out = vec![PACKAGE_OP];
    out.extend(pkg_length(body.len()).expect("a 255-element package of small terms fits"));
    out.extend(body);
    out
}

/// `Name (path, object)`.
pub fn name(path: &str, object: &[u8]) -> Vec<u8> {
    let mut out = vec![NAME_OP];
    out.extend(name_string(path));
    out.extend_from_slice(object);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_aml_name_strings() {
        assert_eq!(name_seg("_S5"), *b"_S5_");
        assert_eq!(name_seg("pci0"), *b"PCI0");
        assert_eq!(name_string("\\_S5"), b"\\_S5_".to_vec());
        assert_eq!(name_string("FOO"), b"FOO_".to_vec());
        assert_eq!(
            name_string("\\_SB.PCI0"),
            [&[ROOT_CHAR, DUAL_NAME_PREFIX][..], b"_SB_PCI0"].concat()
        );
        assert_eq!(
            name_string("A.B.C"),
            [&[MULTI_NAME_PREFIX, 3][..], b"A___B___C___"].concat()
        );
        assert_eq!(name_string("\\"), vec![ROOT_CHAR, 0]);
    }

    #[test]
    fn test_aml_pkg_length_encodings() {
        // ACPI 6.5 §20.2.4: one byte up to 63, then the lead byte's low nibble and
        // following bytes, the length counting the encoding itself.
        assert_eq!(pkg_length(0), Some(vec![1]));
        assert_eq!(pkg_length(62), Some(vec![63]));
        // 63 bytes of content need two length bytes: total 65 = 0x41.
        assert_eq!(pkg_length(63), Some(vec![0x41, 0x04]));
        // Largest 2-byte form: total 0xfff.
        assert_eq!(pkg_length(0xfff - 2), Some(vec![0x4f, 0xff]));
        // One more byte of content needs three length bytes: total 0x1001.
        assert_eq!(pkg_length(0xfff - 1), Some(vec![0x81, 0x00, 0x01]));
        assert_eq!(pkg_length(PKG_LENGTH_MAX), None);
    }

    #[test]
    fn test_aml_integers_shortest_form() {
        assert_eq!(integer(0), vec![ZERO_OP]);
        assert_eq!(integer(1), vec![ONE_OP]);
        assert_eq!(integer(5), vec![BYTE_PREFIX, 5]);
        assert_eq!(integer(0x1234), vec![WORD_PREFIX, 0x34, 0x12]);
        assert_eq!(
            integer(0xdead_beef),
            vec![DWORD_PREFIX, 0xef, 0xbe, 0xad, 0xde]
        );
        assert_eq!(integer(1 << 32), vec![QWORD_PREFIX, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn test_aml_name_package() {
        // Name (\_S5, Package () { 5, 5, 0, 0 })
        let aml = name(
            "\\_S5",
            &package(&[integer(5), integer(5), integer(0), integer(0)]),
        );
        assert_eq!(
            aml,
            vec![
                NAME_OP,
                ROOT_CHAR,
                b'_',
                b'S',
                b'5',
                b'_',
                PACKAGE_OP,
                8,
                4,
                BYTE_PREFIX,
                5,
                BYTE_PREFIX,
                5,
                ZERO_OP,
                ZERO_OP
            ]
        );
    }
}
