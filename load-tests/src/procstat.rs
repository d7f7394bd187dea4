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

/// The fields of `/proc/{pid}/stat` after the command name, which is in parentheses and may
/// hold spaces: the first is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // The state is a letter; everything after it is a number (read as 0 where negative).
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    // Fields 14 and 15; the list starts at field 4.
    let fields = stat_fields(pid)?;
    Some(fields.get(10)? + fields.get(11)?)
}

/// utime + stime of `pid` and of its children that it has waited for (cutime + cstime).
fn cpu_ticks_with_reaped(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(fields.get(10)? + fields.get(11)? + fields.get(12)? + fields.get(13)?)
}

/// The processes whose parent is `parent` (PostgreSQL's backends and helpers, of its
/// postmaster), from `/proc/*/stat`.
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        // Field 4 (ppid) is the first after the state.
        .filter(|&pid| stat_fields(pid).and_then(|f| f.first().copied()) == Some(u64::from(parent)))
        .collect()
}

/// The parent of `pid` (`PPid` in `/proc/{pid}/status`).
pub(crate) fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU ticks of `root` and every process under it, the exited ones included: the live
/// children's own times, plus what `root` has counted of the children it reaped. A backend
/// that exits during a window moves from the first sum to the second, so a difference of two
/// readings counts it once, whenever it ended.
fn tree_ticks(root: u32) -> Option<u64> {
    let children: u64 = children_of(root)
        .into_iter()
        .filter_map(cpu_ticks_with_reaped)
        .sum();
    Some(cpu_ticks_with_reaped(root)? + children)
}

/// Whose CPU a [`CpuMark`] counts.
#[derive(Clone, Debug)]
enum Counted {
    /// These processes (one engine, or a cluster's nodes).
    Processes(Vec<u32>),
    /// A process and everything under it (PostgreSQL: the postmaster and its backends).
    Tree(u32),
}

impl Counted {
    fn ticks(&self) -> Option<u64> {
        match self {
            Counted::Processes(pids) => pids.iter().map(|&pid| cpu_ticks(pid)).sum(),
            Counted::Tree(root) => tree_ticks(*root),
        }
    }
}

/// A CPU counter at one moment: of a process, of several summed, or of a process tree.
#[derive(Clone, Debug)]
pub(crate) struct CpuMark {
    counted: Counted,
    ticks: u64,
    at: Instant,
}

impl CpuMark {
    /// Reads the counter of `pid` now.
    pub(crate) fn take(pid: u32) -> Option<Self> {
        Self::of(Counted::Processes(vec![pid]))
    }

    /// Reads the counters of `pids` now, summed (none when any cannot be read).
    pub(crate) fn take_all(pids: &[u32]) -> Option<Self> {
        if pids.is_empty() {
            return None;
        }
        Self::of(Counted::Processes(pids.to_vec()))
    }

    /// Reads the counter of `root` and everything under it now (see [`tree_ticks`]).
    pub(crate) fn take_tree(root: u32) -> Option<Self> {
        Self::of(Counted::Tree(root))
    }

    fn of(counted: Counted) -> Option<Self> {
        Some(Self {
            ticks: counted.ticks()?,
            counted,
            at: clock::now(),
        })
    }

    /// CPU used since this mark, as a percentage of one core.
    pub(crate) fn percent_since(&self) -> Option<f64> {
        let ticks = self.counted.ticks()?.saturating_sub(self.ticks);
        let secs = clock::now().duration_since(self.at).as_secs_f64();
        (secs > 0.0).then(|| ticks as f64 / TICKS_PER_SEC / secs * 100.0)
    }

    /// CPU ticks used since this mark.
    #[cfg(test)]
    pub(crate) fn ticks_since(&self) -> Option<u64> {
        Some(self.counted.ticks()?.saturating_sub(self.ticks))
    }
}

/// The summed `VmRSS` of `pids`, in KiB (none when any cannot be read, or there are none).
pub(crate) fn rss_kib_all(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum()
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
