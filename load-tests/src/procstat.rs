//! What `/proc` says about a process: its resident memory and the CPU it has used.

use std::time::Instant;

use crate::clock;

/// Linux reports CPU time in USER_HZ ticks, which the kernel ABI fixes at 100 per second.
const TICKS_PER_SEC: f64 = 100.0;

/// `VmRSS` of `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A process's CPU counter at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuMark {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuMark {
    /// Reads the counter of `pid` now.
    pub(crate) fn take(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            ticks: cpu_ticks(pid)?,
            at: clock::now(),
        })
    }

    /// CPU used since this mark, as a percentage of one core.
    pub(crate) fn percent_since(&self) -> Option<f64> {
        let ticks = cpu_ticks(self.pid)?.saturating_sub(self.ticks);
        let secs = clock::now().duration_since(self.at).as_secs_f64();
        (secs > 0.0).then(|| ticks as f64 / TICKS_PER_SEC / secs * 100.0)
    }
}

/// Busy ticks of the whole machine, over all cores (`/proc/stat`, everything but idle and
/// iowait).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let (idle, iowait) = (*fields.get(3)?, *fields.get(4)?);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    Some(fields.iter().take(8).sum::<u64>() - idle - iowait)
}

/// The machine's busy counter at one moment: to tell how much CPU processes other than the
/// server and the harness took (a build running beside the test, say).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MachineMark {
    ticks: u64,
    at: Instant,
}

impl MachineMark {
    /// Reads the counter now.
    pub(crate) fn take() -> Option<Self> {
        Some(Self {
            ticks: machine_busy_ticks()?,
            at: clock::now(),
        })
    }

    /// Busy CPU since this mark, as a percentage of one core (200 % = both cores busy).
    pub(crate) fn percent_since(&self) -> Option<f64> {
        let ticks = machine_busy_ticks()?.saturating_sub(self.ticks);
        let secs = clock::now().duration_since(self.at).as_secs_f64();
        (secs > 0.0).then(|| ticks as f64 / TICKS_PER_SEC / secs * 100.0)
    }
}

/// Waits until the machine has been nearly idle (under 15 % of one core busy) for a second,
/// at most `max` seconds: other processes' CPU would skew what the run measures. Returns how
/// busy the last second was.
pub(crate) async fn wait_quiet(max: f64) -> Option<f64> {
    let start = clock::now();
    loop {
        let mark = MachineMark::take()?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let busy = mark.percent_since()?;
        if busy < 15.0 || clock::now().duration_since(start).as_secs_f64() >= max {
            return Some(busy);
        }
    }
}
