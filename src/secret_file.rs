//! Secrets from the environment or a file: one trimming rule, and an ssh-style warning when a
//! secret file is readable by group or others.
//!
//! A secret is trimmed of ASCII whitespace (space, tab, CR, LF, form feed) at both ends,
//! whether it came from a variable or a file: a trailing newline never becomes part of the key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// `s` without ASCII whitespace at either end.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Reads a secret file (trimmed, see [`trim`]), warning once per file and process when group or
/// others may read it. The warning names the file and the fix, never the content.
pub fn read(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    if let Some(mode) = too_open(path) {
        warn_once(path, mode);
    }
    Ok(trim(&text).to_string())
}

/// The permission bits of `path` when group or others have any access to it.
#[cfg(unix)]
pub fn too_open(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// The permission bits of `path` when group or others have any access to it (never, here).
#[cfg(not(unix))]
pub fn too_open(_path: &Path) -> Option<u32> {
    None
}

fn warn_once(path: &Path, mode: u32) {
    static WARNED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let first = WARNED
        .get_or_init(Default::default)
        .lock()
        .map(|mut w| w.insert(path.to_path_buf()))
        .unwrap_or(false);
    if first {
        tracing::warn!(
            file = %path.display(),
            mode = %format!("{mode:04o}"),
            "secret file {} is readable by group or others (permissions {mode:04o}); restrict it with `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_lose_ascii_whitespace_only() {
        assert_eq!(trim(" \tsecret\r\n"), "secret");
        assert_eq!(trim("sec ret"), "sec ret");
        assert_eq!(trim("\u{a0}secret\u{a0}"), "\u{a0}secret\u{a0}");
    }

    #[cfg(unix)]
    #[test]
    fn group_or_other_access_is_too_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "k\n").unwrap();
        for (mode, open) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(too_open(&p).is_some(), open, "{mode:o}");
        }
        assert_eq!(read(&p).unwrap(), "k");
    }
}
