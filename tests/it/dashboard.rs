//! Issue 14: the Grafana dashboard shipped in `docs/grafana/switchboard.json` queries only
//! metrics the engine exports, so the two cannot drift apart.
//!
//! Every PromQL expression in the dashboard is read for the metric names it selects (not its
//! functions, keywords, label names, strings or Grafana variables), and each name is looked up
//! among the families a running engine declares on `GET /metrics` (`# TYPE` lines): a
//! histogram only through its `_bucket`, `_sum` and `_count` series.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::metrics::scrape;
use super::support::TestServer;

/// The dashboard, as checked in.
fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana/switchboard.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every panel, those inside collapsed rows too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn collect<'a>(panels: &'a Value, into: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            into.push(panel);
            collect(&panel["panels"], into);
        }
    }
    let mut all = Vec::new();
    collect(&dashboard["panels"], &mut all);
    all
}

/// Every query of the dashboard: (panel title, expression).
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |target| {
                    let expr = target["expr"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{title}: a target without an expr"));
                    (title.clone(), expr.to_owned())
                })
        })
        .collect()
}

/// Words that are PromQL syntax, not metrics, wherever they stand.
const KEYWORDS: [&str; 12] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a PromQL expression selects.
///
/// It skips string literals, label matchers (`{…}`), ranges (`[…]`), Grafana variables
/// (`$x`, `${x}`), numbers and durations, the label lists of `by (…)` and its kin, and any
/// word that is called (`rate(`) or is an aggregation followed by `by`/`without`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut label_list_next = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = past_string(&chars, i);
        } else if c == '{' {
            i = past_closing(&chars, i, '{', '}');
        } else if c == '[' {
            i = past_closing(&chars, i, '[', ']');
        } else if c == '(' && label_list_next {
            label_list_next = false;
            i = past_closing(&chars, i, '(', ')');
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = past_closing(&chars, i, '{', '}');
            } else {
                while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number (0.99, 1e3) or a duration (5m).
            while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let rest: String = chars[i..].iter().collect::<String>();
            let rest = rest.trim_start();
            let called = rest.starts_with('(');
            let aggregated = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|after| after.starts_with(|c: char| c.is_whitespace() || c == '('))
            });
            if LABEL_LISTS.contains(&word.as_str()) {
                label_list_next = called;
            } else if !called && !aggregated && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index just past the string literal that opens at `start`.
fn past_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        // Backticks are raw strings; the other quotes take escapes.
        i += if chars[i] == '\\' && quote != '`' { 2 } else { 1 };
    }
    i + 1
}

/// The index just past the `close` that matches the `open` at `start`, skipping strings.
fn past_closing(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = past_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The metric families a scrape declares, by name, with their type (`# TYPE name type`).
fn families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// Whether a query for series `name` finds a family of `families`: a counter or gauge by its
/// own name, a histogram only through its `_bucket`, `_sum` and `_count` series.
fn exported(families: &BTreeMap<String, String>, name: &str) -> bool {
    let histogram_series = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| families.get(base).is_some_and(|kind| kind == "histogram"))
    });
    histogram_series || families.get(name).is_some_and(|kind| kind != "histogram")
}

/// The dashboard's queries that name a metric the scrape does not declare, with the names.
fn unknown_metrics(queries: &[(String, String)], scrape: &str) -> Vec<(String, String)> {
    let families = families(scrape);
    queries
        .iter()
        .flat_map(|(title, expr)| {
            metric_names(expr)
                .into_iter()
                .filter(|name| !exported(&families, name))
                .map(move |name| (title.clone(), name))
        })
        .collect()
}

#[test]
fn issue14_metric_names_are_read_from_promql_without_functions_labels_or_variables() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, type) (rate(switchboard_request_duration_seconds_bucket{socket="agent", type=~"re(open|ply)"}[$__rate_interval])))"#
        ),
        ["switchboard_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names("sum without(instance) (a_total) / on (job) group_left (x) sum(b) > bool 0.5 offset 5m"),
        ["a_total", "b"]
    );
    assert_eq!(
        names(r#"sum(rate(x_sum[${__rate_interval}])) / sum(rate(x_count[5m])) or vector(0) and up{a="}"}"#),
        ["up", "x_count", "x_sum"]
    );
    assert_eq!(names("max(s) by (presence)"), ["s"]);
    assert_eq!(names("label_replace(m, 'dst', \"$1\", 'src', '(.*)')"), ["m"]);
}

#[test]
fn issue14_a_query_for_a_metric_the_engine_does_not_declare_is_caught() {
    let scrape = "# TYPE h_seconds histogram\nh_seconds_bucket{le=\"+Inf\"} 1\n\
                  # TYPE c_total counter\nc_total 1\n# TYPE g gauge\ng 1\n";
    let queries = |expr: &str| [("panel".to_owned(), expr.to_owned())];
    let unknown = |expr: &str| {
        unknown_metrics(&queries(expr), scrape)
            .into_iter()
            .map(|(_, name)| name)
            .collect::<Vec<_>>()
    };
    assert!(unknown("rate(h_seconds_bucket[1m]) + rate(h_seconds_sum[1m]) + c_total + g").is_empty());
    assert_eq!(
        unknown("h_seconds"),
        ["h_seconds"],
        "a histogram has no series of its own name"
    );
    assert_eq!(unknown("c"), ["c"], "a counter is queried with its _total");
    assert_eq!(
        unknown("g_count + rate(nope_total[1m])"),
        ["g_count", "nope_total"]
    );
}

#[test]
fn issue14_the_dashboard_is_an_importable_grafana_dashboard() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "switchboard");
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "{title}: id taken twice"
        );
        let grid = &panel["gridPos"];
        for key in ["h", "w", "x", "y"] {
            assert!(grid[key].as_u64().is_some(), "{title}: gridPos.{key}");
        }
        let right = grid["x"].as_u64().unwrap_or(0) + grid["w"].as_u64().unwrap_or(0);
        assert!(right <= 24, "{title}: wider than the grid");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let ref_ids: BTreeSet<_> = targets.iter().map(|t| t["refId"].as_str()).collect();
        assert_eq!(ref_ids.len(), targets.len(), "{title}: refIds must differ");
    }
}

#[tokio::test]
async fn issue14_every_metric_the_dashboard_queries_is_one_the_engine_exports() {
    // A durable engine, so that the store's metrics are declared too.
    let server = TestServer::start_durable(Default::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000990")).await;
    ana.closes(&chat).await;
    ana.reopen(&chat).await.expect_ok();
    let mut sam = server.supervisor("sam").connect().await;
    sam.subscribe_all().await;

    let scrape = scrape(&server).await.0;
    let queries = expressions(&dashboard());
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let unknown = unknown_metrics(&queries, &scrape);
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the engine does not export (panel, metric): {unknown:?}"
    );
    // And it shows every family the engine exports.
    let queried: BTreeSet<String> = queries.iter().flat_map(|(_, expr)| metric_names(expr)).collect();
    let unshown: Vec<_> = families(&scrape)
        .into_keys()
        .filter(|family| {
            !queried.iter().any(|name| {
                name == family
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(family))
            })
        })
        .collect();
    assert!(unshown.is_empty(), "metrics no panel shows: {unshown:?}");
}
