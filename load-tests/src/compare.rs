//! The engine's run beside the floor's and the peer's (`--with-floor`, `--with-peer`): every
//! report, a side-by-side summary, and the ratios the targets are stated in.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::report::Report;

/// The engine's run next to the floor's and/or the peer's.
#[derive(Debug, Serialize)]
pub(crate) struct Compared {
    pub(crate) scenario: &'static str,
    pub(crate) engine: Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) floor: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) peer: Option<Report>,
    /// engine / floor, per figure.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) ratio: BTreeMap<String, f64>,
    /// peer / floor, per figure.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) peer_ratio: BTreeMap<String, f64>,
    /// engine / peer, per figure.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) engine_peer_ratio: BTreeMap<String, f64>,
}

impl Compared {
    /// Puts the runs side by side.
    pub(crate) fn new(engine: Report, floor: Option<Report>, peer: Option<Report>) -> Self {
        let ratio = floor.as_ref().map(|f| ratios(&engine, f)).unwrap_or_default();
        let peer_ratio = match (&peer, &floor) {
            (Some(p), Some(f)) => ratios(p, f),
            _ => BTreeMap::new(),
        };
        let engine_peer_ratio = peer.as_ref().map(|p| ratios(&engine, p)).unwrap_or_default();
        Self {
            scenario: engine.scenario,
            engine,
            floor,
            peer,
            ratio,
            peer_ratio,
            engine_peer_ratio,
        }
    }

    /// Every run's table, the summary side by side, then the ratios.
    pub(crate) fn table(&self) -> String {
        let mut t = String::new();
        for report in self.runs() {
            t.push_str(&report.table());
            t.push('\n');
        }
        t.push_str(&self.side_by_side());
        for (title, ratio) in [
            ("engine / floor", &self.ratio),
            ("peer / floor", &self.peer_ratio),
            ("engine / peer", &self.engine_peer_ratio),
        ] {
            if ratio.is_empty() {
                continue;
            }
            let _ = writeln!(t, "\n== {title} ==");
            for (k, v) in ratio {
                let _ = writeln!(t, "{k:<36} {v:.2}");
            }
        }
        t
    }

    /// Floor, peer, engine: the runs there are, in the order they ran.
    fn runs(&self) -> impl Iterator<Item = &Report> {
        self.floor
            .iter()
            .chain(self.peer.iter())
            .chain(std::iter::once(&self.engine))
    }

    /// One column per run: throughput, CPU, memory, and p50 / p99 of every path.
    fn side_by_side(&self) -> String {
        let runs: Vec<&Report> = self.runs().collect();
        let mut t = String::from("== side by side ==\n");
        let row = |t: &mut String, name: &str, cells: Vec<String>| {
            let _ = write!(t, "{name:<36}");
            for cell in cells {
                let _ = write!(t, " {cell:>16}");
            }
            t.push('\n');
        };
        let each = |f: &dyn Fn(&Report) -> String| runs.iter().map(|r| f(r)).collect::<Vec<_>>();
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |v| format!("{v:.1}{unit}"));
        row(&mut t, "", each(&|r| format!("{:?}", r.target).to_lowercase()));
        row(&mut t, "ops/s", each(&|r| format!("{:.0}", r.ops_per_s)));
        row(
            &mut t,
            "done/s",
            each(&|r| format!("{:.0} {}", r.done_per_s, r.unit)),
        );
        row(&mut t, "connections", each(&|r| r.connections.to_string()));
        row(
            &mut t,
            "connecting them all",
            each(&|r| opt(r.extra.get("connect_all_s").and_then(|v| v.as_f64()), " s")),
        );
        row(
            &mut t,
            "server CPU (% of a core)",
            each(&|r| opt(r.server.cpu_pct_of_one_core, " %")),
        );
        row(
            &mut t,
            "server RSS after",
            each(&|r| {
                r.server
                    .rss_after_kib
                    .map_or("-".to_owned(), |k| format!("{k} KiB"))
            }),
        );
        row(
            &mut t,
            "RSS per connection",
            each(&|r| opt(rss_per_conn(r), " KiB")),
        );
        row(
            &mut t,
            "others' CPU",
            each(&|r| opt(r.others_cpu_pct_of_one_core, " %")),
        );
        let paths: Vec<&str> = self.engine.latency_us.keys().copied().collect();
        for path in paths {
            let cell = |r: &Report| {
                r.latency_us
                    .get(path)
                    .map_or("-".to_owned(), |s| format!("{} / {}", s.p50, s.p99))
            };
            row(&mut t, &format!("{path} p50/p99 µs"), each(&cell));
        }
        row(
            &mut t,
            "errors",
            each(&|r| r.errors.values().sum::<u64>().to_string()),
        );
        t
    }
}

fn rss_per_conn(report: &Report) -> Option<f64> {
    report.extra.get("rss_per_conn_kib").and_then(|v| v.as_f64())
}

/// `a / b` per figure: throughput, p50 and p99 of every path both measured, RSS per
/// connection, server CPU per unit of work.
fn ratios(a: &Report, b: &Report) -> BTreeMap<String, f64> {
    let mut ratio = BTreeMap::new();
    let r = |x: f64, y: f64| (y > 0.0).then(|| (x / y * 100.0).round() / 100.0);
    if let Some(x) = r(a.done_per_s, b.done_per_s) {
        ratio.insert("throughput".to_owned(), x);
    }
    for (path, s) in &a.latency_us {
        if let Some(t) = b.latency_us.get(path) {
            for (q, x, y) in [("p50", s.p50, t.p50), ("p99", s.p99, t.p99)] {
                if let Some(v) = r(x as f64, y as f64) {
                    ratio.insert(format!("{path}_{q}"), v);
                }
            }
        }
    }
    if let (Some(x), Some(y)) = (rss_per_conn(a), rss_per_conn(b)) {
        if let Some(v) = r(x, y) {
            ratio.insert("rss_per_conn".to_owned(), v);
        }
    }
    if let (Some(x), Some(y), true) = (
        a.server.cpu_pct_of_one_core,
        b.server.cpu_pct_of_one_core,
        a.done > 0,
    ) {
        if let Some(v) = r(x / a.done_per_s.max(1e-9), y / b.done_per_s.max(1e-9)) {
            ratio.insert("server_cpu_per_unit".to_owned(), v);
        }
    }
    ratio
}
