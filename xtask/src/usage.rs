//! What this process has used so far: CPU time and peak memory, which
//! `cargo xtask local` prints at its end so that a run's cost can be
//! measured as the universe grows (README "Scale").

use std::time::Duration;

/// CPU time (user and system, every thread) and the peak resident set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu: Duration,
    pub peak_memory_bytes: u64,
}

/// The process's usage so far: CPU time from `getrusage(RUSAGE_SELF)`, the
/// peak resident set from /proc/self/status's VmHWM on Linux (getrusage's
/// `ru_maxrss` there keeps the high-water mark of the process before its
/// exec: under `cargo xtask`, cargo's own), `ru_maxrss` elsewhere; `None`
/// where there is neither.
#[cfg(unix)]
pub fn so_far() -> Option<Usage> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let cpu = |t: nix::sys::time::TimeVal| {
        Duration::from_micros(u64::try_from(t.num_microseconds()).unwrap_or(0))
    };
    let peak_memory_bytes = if cfg!(target_os = "linux") {
        vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)?
    } else {
        // ru_maxrss is in kibibytes on the BSDs, in bytes on macOS.
        let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
        u64::try_from(usage.max_rss()).unwrap_or(0) * unit
    };
    Some(Usage {
        cpu: cpu(usage.user_time()) + cpu(usage.system_time()),
        peak_memory_bytes,
    })
}

#[cfg(not(unix))]
pub fn so_far() -> Option<Usage> {
    None
}

/// The peak resident set in bytes from /proc/<pid>/status's text.
fn vm_hwm(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `12.3 s wall, 20.1 s CPU (1.6 cores busy), peak memory 215 MiB`.
pub fn describe(wall: Duration, usage: Option<Usage>) -> String {
    let wall_secs = wall.as_secs_f64();
    let Some(usage) = usage else {
        return format!("{wall_secs:.1} s wall");
    };
    let cpu_secs = usage.cpu.as_secs_f64();
    format!(
        "{wall_secs:.1} s wall, {cpu_secs:.1} s CPU ({:.1} cores busy), peak memory {:.0} MiB",
        cpu_secs / wall_secs.max(f64::EPSILON),
        usage.peak_memory_bytes as f64 / (1024.0 * 1024.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_wall_cpu_and_memory() {
        let usage = Usage {
            cpu: Duration::from_millis(20_100),
            peak_memory_bytes: 215 * 1024 * 1024,
        };
        assert_eq!(
            describe(Duration::from_millis(12_300), Some(usage)),
            "12.3 s wall, 20.1 s CPU (1.6 cores busy), peak memory 215 MiB"
        );
        assert_eq!(describe(Duration::from_millis(12_300), None), "12.3 s wall");
    }

    #[test]
    fn reads_the_high_water_mark_from_the_status_file() {
        let status =
            "Name:\txtask\nVmPeak:\t  912340 kB\nVmHWM:\t   71016 kB\nVmRSS:\t   70000 kB\n";
        assert_eq!(vm_hwm(status), Some(71016 * 1024));
        assert_eq!(vm_hwm("Name:\txtask\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_peak_counts_what_this_process_touched() {
        // 64 MiB touched: the peak is at least that, and time was spent.
        let block = vec![1u8; 64 << 20];
        assert!(block.iter().all(|&b| b == 1));
        let usage = so_far().expect("the kernel answers");
        assert!(usage.peak_memory_bytes >= 64 << 20, "{usage:?}");
        assert!(usage.cpu > Duration::ZERO, "{usage:?}");
    }
}
