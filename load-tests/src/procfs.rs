//! CPU time and memory of a process (the server under load, or ourselves) from `/proc`.

use std::collections::BTreeMap;
use std::path::Path;

/// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`; 100 on every Linux we run).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `utime + stime` in ticks from the text of a `/proc/.../stat` file. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid (4), … utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A CPU-time snapshot of a process: total and per thread name (the server's media thread is
/// `bedside-media`; tokio workers are `tokio-runtime-w`).
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub total_s: f64,
    pub by_thread: BTreeMap<String, f64>,
}

impl CpuSnapshot {
    pub fn read(pid: u32) -> Option<CpuSnapshot> {
        let tck = clock_ticks();
        let base = format!("/proc/{pid}");
        let total = parse_stat_ticks(&std::fs::read_to_string(format!("{base}/stat")).ok()?)?;
        let mut by_thread = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("{base}/task")) {
            for entry in dir.flatten() {
                let p = entry.path();
                let (Ok(stat), Ok(comm)) = (
                    std::fs::read_to_string(p.join("stat")),
                    std::fs::read_to_string(p.join("comm")),
                ) else {
                    continue;
                };
                if let Some(t) = parse_stat_ticks(&stat) {
                    *by_thread.entry(comm.trim().to_owned()).or_insert(0.0) += t as f64 / tck;
                }
            }
        }
        Some(CpuSnapshot {
            total_s: total as f64 / tck,
            by_thread,
        })
    }

    /// CPU seconds spent between `earlier` and `self`, total and per thread name. Threads that
    /// ended in between are missing from `by_thread` (the total still has them).
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuSnapshot {
        CpuSnapshot {
            total_s: (self.total_s - earlier.total_s).max(0.0),
            by_thread: self
                .by_thread
                .iter()
                .map(|(k, v)| {
                    let before = earlier.by_thread.get(k).copied().unwrap_or(0.0);
                    (k.clone(), (v - before).max(0.0))
                })
                .collect(),
        }
    }
}

/// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_a_command_name_with_spaces_and_parens() {
        let stat = "4242 (bedside (x) y) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 3";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let s = CpuSnapshot::read(me).expect("/proc of this process");
        assert!(s.total_s >= 0.0);
        assert!(!s.by_thread.is_empty());
        assert!(rss_kib(me).is_some_and(|k| k > 0));
    }
}
