//! This process's identity on its host — boot id, PID namespace, pid and start time — and
//! whether a process recorded earlier is certainly gone (so its lease or staging file can be
//! taken over at once instead of waiting for an expiry).

use serde::{Deserialize, Serialize};

/// Who a process is, as far as its host can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessId {
    /// Host name (for people; never trusted alone).
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`: changes at every boot.
    #[serde(default)]
    pub boot_id: String,
    /// The PID namespace (`/proc/self/ns/pid`): containers sharing a host name differ here.
    #[serde(default)]
    pub pid_ns: String,
    /// Process id.
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (field 22 of `/proc/<pid>/stat`):
    /// a reused pid has another.
    #[serde(default)]
    pub start_ticks: u64,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl ProcessId {
    /// This process.
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            host: read_trim("/etc/hostname"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        }
    }

    /// A short token of this host's boot and PID namespace, for file names.
    pub fn token(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.boot_id, &self.pid_ns).hash(&mut h);
        format!("{:08x}", h.finish() as u32)
    }

    /// Whether the process `self` describes certainly no longer runs: it ran on this very boot
    /// in this very PID namespace (so its pid is meaningful here), and that pid is free or
    /// belongs to a process started at another time. Anything unknown answers `false`.
    pub fn is_gone(&self) -> bool {
        let me = ProcessId::current();
        if self.boot_id.is_empty()
            || self.pid_ns.is_empty()
            || self.boot_id != me.boot_id
            || self.pid_ns != me.pid_ns
            || self.pid == me.pid
        {
            return false;
        }
        match start_ticks(self.pid) {
            None => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            Some(t) => self.start_ticks != 0 && t != self.start_ticks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_child_is_gone_and_a_live_one_or_a_stranger_is_not() {
        let me = ProcessId::current();
        assert!(!me.is_gone());
        assert!(me.start_ticks > 0 && !me.boot_id.is_empty() && !me.pid_ns.is_empty());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let them = ProcessId {
            pid: child.id(),
            start_ticks: start_ticks(child.id()).unwrap(),
            ..me.clone()
        };
        assert!(!them.is_gone());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(them.is_gone());
        // Another PID namespace, or a record without one: never taken for gone.
        let elsewhere = ProcessId {
            pid_ns: "pid:[1]".into(),
            ..them.clone()
        };
        assert!(!elsewhere.is_gone());
        let old_format = ProcessId {
            boot_id: String::new(),
            ..them
        };
        assert!(!old_format.is_gone());
    }
}
