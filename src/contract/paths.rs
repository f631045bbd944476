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

/// Longest encoded segment [`bounded_segment`] keeps whole.
pub const MAX_SEGMENT: usize = 120;

/// [`encode_segment`] kept under [`MAX_SEGMENT`] bytes, so a file name derived from API data
/// stays under every file system's limit (255 bytes) whatever the value's length: a longer value
/// keeps a readable prefix and adds a hash of the whole (`<prefix>~<16 hex digits>`).
pub fn bounded_segment(v: &str) -> String {
    let enc = encode_segment(v);
    if enc.len() <= MAX_SEGMENT {
        return enc;
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(v.as_bytes());
    let mut cut = MAX_SEGMENT - 17;
    // Never cut inside a `%XX` escape.
    while enc.as_bytes()[..cut]
        .iter()
        .rev()
        .take(2)
        .any(|&b| b == b'%')
    {
        cut -= 1;
    }
    format!("{}~{}", &enc[..cut], hex::encode(&h[..8]))
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

    #[test]
    fn long_values_keep_a_prefix_and_a_hash() {
        assert_eq!(bounded_segment("ACC-SG-0001"), "ACC-SG-0001");
        let long = "狮".repeat(100);
        let a = bounded_segment(&long);
        assert!(a.len() <= MAX_SEGMENT && a.starts_with("%E7%8B%AE"), "{a}");
        assert_ne!(a, bounded_segment(&format!("{long}x")));
    }
}
