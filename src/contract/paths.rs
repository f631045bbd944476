//! Path segments from data (warehouse contract): a value taken from the API becomes a folder or
//! file name percent-encoded outside `[A-Za-z0-9_.-]`, so it can never leave its folder.

/// Percent-encodes every byte outside `[A-Za-z0-9_.-]` (upper-case hex).
pub fn encode_segment(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for &b in v.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_leave_their_folder() {
        assert_eq!(encode_segment("../../x"), "..%2F..%2Fx");
        assert_eq!(encode_segment("ACC-SG-0001"), "ACC-SG-0001");
        assert_eq!(encode_segment("a b/c=%"), "a%20b%2Fc%3D%25");
        assert_eq!(encode_segment("狮"), "%E7%8B%AE");
    }
}
