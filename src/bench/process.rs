//! What `/proc` says about a process: CPU time used and resident memory.
//!
//! Linux only; elsewhere every reading is an error and the bench leaves
//! the CPU and memory columns empty.

use std::io;
use std::time::Duration;

/// Clock ticks per second of the times in `/proc/<pid>/stat`. Linux
/// reports them in `USER_HZ`, which is 100 on every architecture it
/// exports to user space today (the kernel's own `HZ` may differ).
const TICKS_PER_SECOND: u64 = 100;

/// The CPU time `pid` has used so far: user plus system, of all its
/// threads (finished ones included), with a resolution of 10 ms.
pub(super) fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat)
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/{pid}/stat: {stat}")))?;
    Ok(Duration::from_micros(ticks * 1_000_000 / TICKS_PER_SECOND))
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name
/// (field 2, in parentheses) may hold spaces and parentheses itself, so
/// fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3) ... utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The resident set size of `pid` (`VmRSS`), in bytes.
pub(super) fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_rss(&status)
        .ok_or_else(|| io::Error::other(format!("no VmRSS line in /proc/{pid}/status")))
}

/// `VmRSS` (given in kB) from the text of `/proc/<pid>/status`, in bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_name() {
        // A name with a space and a parenthesis, as `prctl` allows.
        let stat = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 37 0 0 20 0 3 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tprotogate\nVmHWM:\t  9000 kB\nVmRSS:\t   8192 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(status), Some(8192 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        if cfg!(target_os = "linux") {
            let pid = std::process::id();
            assert!(rss_bytes(pid).unwrap() > 0);
            cpu_time(pid).unwrap();
        }
    }
}
