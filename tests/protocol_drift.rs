//! `protocol/` is what a client author reads: schemas and an AsyncAPI document generated from
//! `src/protocol.rs`, and a hand-written README. These tests fail when either drifts from the
//! types.
//!
//! README examples: a fenced ```json block whose line above is `<!-- client -->`,
//! `<!-- server -->` or `<!-- http: NAME -->` holds one or more JSON values, each of which must
//! be a valid client frame, server frame or `protocol/schema/http/NAME.json` body; under
//! `<!-- client (invalid) -->`, each must be a frame the engine refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use switchboard::protocol::schema;
use switchboard::protocol::supervisor::{AnalyticsReport, SupervisorFrame, SupervisorServerFrame};
use switchboard::protocol::{
    BotRequest, ClientFrame, DeliveryReport, InboundMessage, IngressReceipt, OutboundMessage, ServerFrame,
};

const BLESS: &str = "SWITCHBOARD_BLESS";
const BLESS_COMMAND: &str = "SWITCHBOARD_BLESS=1 cargo test --test protocol_drift";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A generated file, parsed; from the types as they are now, not from disk.
fn generated(path: &str) -> Value {
    let (_, content) = schema::files()
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("schema::files() has no {path}"));
    serde_json::from_str(&content).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

fn readme() -> String {
    let path = repo_root().join("protocol/README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.json` file under `dir`, recursively.
fn json_files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(json_files_under(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            found.push(path);
        }
    }
    found
}

/// Generated-looking files that the generator no longer writes.
fn stale_files(generated: &BTreeSet<String>) -> Vec<String> {
    json_files_under(&repo_root().join("protocol/schema"))
        .into_iter()
        .filter_map(|p| {
            let relative = p
                .strip_prefix(repo_root())
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            (!generated.contains(&relative)).then_some(relative)
        })
        .collect()
}

/// The first line where two texts differ, to point the reader at the change.
fn first_difference(expected: &str, actual: &str) -> String {
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    format!(
        "line {}: generated {:?}, checked in {:?}",
        line + 1,
        expected.lines().nth(line).unwrap_or("<end>"),
        actual.lines().nth(line).unwrap_or("<end>")
    )
}

#[test]
fn checked_in_protocol_files_are_what_the_types_generate() {
    let files = schema::files();
    let paths: BTreeSet<String> = files.iter().map(|(p, _)| p.clone()).collect();
    if std::env::var_os(BLESS).is_some() {
        schema::write_all(repo_root()).expect("write protocol files");
        for stale in stale_files(&paths) {
            std::fs::remove_file(repo_root().join(&stale)).expect("remove stale protocol file");
        }
        return;
    }
    let mut problems = Vec::new();
    for (path, content) in &files {
        match std::fs::read_to_string(repo_root().join(path)) {
            Ok(on_disk) => {
                let on_disk = on_disk.replace("\r\n", "\n");
                if on_disk != *content {
                    problems.push(format!(
                        "{path} differs ({})",
                        first_difference(content, &on_disk)
                    ));
                }
            }
            Err(e) => problems.push(format!("{path} cannot be read: {e}")),
        }
    }
    for stale in stale_files(&paths) {
        problems.push(format!("{stale} is no longer generated"));
    }
    assert!(
        problems.is_empty(),
        "protocol/ has drifted from src/protocol.rs:\n  {}\nRun `{BLESS_COMMAND}` to regenerate it, \
         then review the diff (and protocol/README.md).",
        problems.join("\n  ")
    );
}

#[test]
fn generated_schemas_are_valid_json_schema_2020_12() {
    for (path, content) in schema::files() {
        if !path.starts_with("protocol/schema/") {
            continue;
        }
        let schema: Value = serde_json::from_str(&content).expect("generated JSON");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{path} declares another draft"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{path} is not a valid JSON Schema: {e}");
        }
    }
}

/// Every `"$ref": "#/..."` below `value`.
fn local_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) if r.starts_with('#') => found.push(r.clone()),
                    _ => local_refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| local_refs(v, found)),
        _ => {}
    }
}

#[test]
fn asyncapi_document_describes_the_agent_socket_with_references_that_resolve() {
    let doc = generated("protocol/asyncapi.json");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["agent"]["address"], "/v1/agent/ws");
    assert_eq!(doc["operations"]["sendRequest"]["action"], "send");
    assert_eq!(doc["operations"]["receiveFrames"]["action"], "receive");
    let mut refs = Vec::new();
    local_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    let dangling: Vec<&String> = refs.iter().filter(|r| doc.pointer(&r[1..]).is_none()).collect();
    assert!(
        dangling.is_empty(),
        "asyncapi.json refers to nothing at {dangling:?}"
    );
    // Every kind of server frame has a message.
    for kind in discriminators(&generated("protocol/schema/server-frame.json"), "type") {
        assert!(
            doc["components"]["messages"].get(&kind).is_some(),
            "asyncapi.json has no message for `{kind}` frames"
        );
    }
}

// ----- what the README must cover, derived from the schemas -----------------------------------

/// The values of the `tag` discriminator of a tagged enum's schema (`oneOf` of objects whose
/// `tag` property is a `const`).
fn discriminators(schema: &Value, tag: &str) -> BTreeSet<String> {
    schema["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tagged enum schema: {schema}"))
        .iter()
        .filter_map(|variant| variant["properties"][tag]["const"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The values of a plain enum's schema (`enum`, or `oneOf` of `const`s).
fn enum_values(schema: &Value) -> BTreeSet<String> {
    let listed = schema["enum"].as_array().into_iter().flatten();
    let consts = schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| &v["const"]);
    listed
        .chain(consts)
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn server_def(name: &str) -> Value {
    generated("protocol/schema/server-frame.json")["$defs"][name].clone()
}

/// Which schema a README example is checked against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Marker {
    Client,
    /// A client frame shown as bad input (R18): it must not validate.
    InvalidClient,
    Server,
    SupervisorClient,
    SupervisorServer,
    Http(String),
}

impl Marker {
    fn parse(comment: &str) -> Option<Marker> {
        let inner = comment.trim().strip_prefix("<!--")?.strip_suffix("-->")?.trim();
        match inner {
            "client" => Some(Marker::Client),
            "client (invalid)" => Some(Marker::InvalidClient),
            "server" => Some(Marker::Server),
            "supervisor client" => Some(Marker::SupervisorClient),
            "supervisor server" => Some(Marker::SupervisorServer),
            _ => inner
                .strip_prefix("http:")
                .map(|name| Marker::Http(name.trim().to_owned())),
        }
    }

    fn schema_path(&self) -> String {
        match self {
            Marker::Client | Marker::InvalidClient => "protocol/schema/client-frame.json".into(),
            Marker::Server => "protocol/schema/server-frame.json".into(),
            Marker::SupervisorClient => "protocol/schema/supervisor-frame.json".into(),
            Marker::SupervisorServer => "protocol/schema/supervisor-server-frame.json".into(),
            Marker::Http(name) => format!("protocol/schema/http/{name}.json"),
        }
    }
}

/// One marked ```json block of the README.
#[derive(Debug)]
struct Example {
    /// 1-based line of the fence, for messages.
    line: usize,
    marker: Marker,
    values: Vec<Value>,
}

/// Every marked ```json block. Panics on a block that is marked but unreadable, so that a
/// typo cannot quietly exclude an example.
fn examples(readme: &str) -> Vec<Example> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let start = i;
        let end = (start + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .unwrap_or_else(|| panic!("README line {}: unclosed code block", start + 1));
        i = end + 1;
        let above = start.checked_sub(1).map(|j| lines[j].trim()).unwrap_or("");
        if fence.trim_end() != "```json" || !above.starts_with("<!--") {
            continue;
        }
        let marker = Marker::parse(above).unwrap_or_else(|| {
            panic!(
                "README line {start}: unknown example marker {above:?} \
                 (use <!-- client -->, <!-- client (invalid) -->, <!-- server -->, <!-- supervisor client -->, <!-- supervisor server --> or <!-- http: NAME -->)"
            )
        });
        let body = lines[start + 1..end].join("\n");
        let values: Vec<Value> = serde_json::Deserializer::from_str(&body)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("README line {}: example is not JSON: {e}", start + 1));
        assert!(!values.is_empty(), "README line {}: empty example", start + 1);
        found.push(Example {
            line: start + 1,
            marker,
            values,
        });
    }
    found
}

/// Every example value marked `marker`.
fn example_values(marker: Marker) -> Vec<Value> {
    examples(&readme())
        .into_iter()
        .filter(|e| e.marker == marker)
        .flat_map(|e| e.values)
        .collect()
}

fn missing_from(expected: &BTreeSet<String>, shown: &BTreeSet<String>) -> Vec<String> {
    expected.difference(shown).cloned().collect()
}

#[test]
fn every_request_type_has_an_example_request_in_the_readme() {
    let types = discriminators(&generated("protocol/schema/client-frame.json"), "type");
    assert!(
        types.contains("reopen") && types.contains("ping"),
        "found {types:?}"
    );
    let shown: BTreeSet<String> = example_values(Marker::Client)
        .iter()
        .filter_map(|f| f["type"].as_str().map(str::to_owned))
        .collect();
    let missing = missing_from(&types, &shown);
    assert!(
        missing.is_empty(),
        "protocol/README.md shows no example request of type {missing:?}"
    );
}

#[test]
fn every_example_request_has_an_example_reply_with_its_id() {
    let replied: BTreeSet<String> = example_values(Marker::Server)
        .iter()
        .filter(|f| f["type"] == "ok" || f["type"] == "error")
        .filter_map(|f| f["id"].as_str().map(str::to_owned))
        .collect();
    let unanswered: Vec<String> = example_values(Marker::Client)
        .iter()
        .filter_map(|f| f["id"].as_str().map(str::to_owned))
        .filter(|id| !replied.contains(id))
        .collect();
    assert!(
        unanswered.is_empty(),
        "protocol/README.md shows no `ok` or `error` reply to the example requests with id {unanswered:?}"
    );
}

/// The values at `pick` of every server example, as strings.
fn shown_in_server_examples(pick: impl Fn(&Value) -> Option<&Value>) -> BTreeSet<String> {
    example_values(Marker::Server)
        .iter()
        .filter_map(pick)
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn assert_all_shown(what: &str, expected: BTreeSet<String>, shown: BTreeSet<String>) {
    assert!(
        expected.len() > 2,
        "found only {expected:?} as {what}s in the schema"
    );
    let missing = missing_from(&expected, &shown);
    assert!(
        missing.is_empty(),
        "protocol/README.md shows no example of {what} {missing:?}"
    );
}

#[test]
fn every_server_frame_type_has_an_example_in_the_readme() {
    assert_all_shown(
        "server frame type",
        discriminators(&generated("protocol/schema/server-frame.json"), "type"),
        shown_in_server_examples(|f| f.get("type")),
    );
}

#[test]
fn every_push_kind_has_an_example_push_in_the_readme() {
    assert_all_shown(
        "push kind",
        discriminators(&server_def("Push"), "kind"),
        shown_in_server_examples(|f| (f["type"] == "push").then(|| &f["event"]["kind"])),
    );
}

#[test]
fn every_reply_kind_has_an_example_ok_in_the_readme() {
    assert_all_shown(
        "reply kind",
        discriminators(&server_def("ReplyResult"), "kind"),
        shown_in_server_examples(|f| (f["type"] == "ok").then(|| &f["result"]["kind"])),
    );
}

/// The codes of the error table: rows `| `code` | …` under the `## Errors` heading.
fn error_table_codes(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .skip_while(|l| !l.starts_with("## Errors"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.trim().strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(code, _)| code.to_owned()))
        .collect()
}

#[test]
fn readme_error_table_lists_exactly_the_error_codes() {
    let codes = enum_values(&server_def("ErrorCode"));
    assert!(codes.contains("active_elsewhere"), "found {codes:?}");
    let rows = error_table_codes(&readme());
    let missing = missing_from(&codes, &rows);
    assert!(
        missing.is_empty(),
        "protocol/README.md's error table lacks {missing:?}"
    );
    let unknown = missing_from(&rows, &codes);
    assert!(
        unknown.is_empty(),
        "protocol/README.md documents unknown error codes {unknown:?}"
    );
}

// ----- README examples are real frames --------------------------------------------------------

#[test]
fn readme_example_frames_validate_against_the_schemas() {
    let examples = examples(&readme());
    assert!(
        examples.len() > 20,
        "found only {} marked examples",
        examples.len()
    );
    let mut validators = BTreeMap::new();
    let mut failures = Vec::new();
    for example in &examples {
        let path = example.marker.schema_path();
        let validator = validators.entry(path.clone()).or_insert_with(|| {
            jsonschema::validator_for(&generated(&path)).unwrap_or_else(|e| panic!("{path}: {e}"))
        });
        for value in &example.values {
            if example.marker == Marker::InvalidClient {
                if validator.is_valid(value) {
                    failures.push(format!(
                        "README line {}: {value} is valid, but shown as invalid",
                        example.line
                    ));
                }
                continue;
            }
            for error in validator.iter_errors(value) {
                failures.push(format!(
                    "README line {} ({path}): {error} at `{}`",
                    example.line, error.instance_path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "invalid examples:\n  {}",
        failures.join("\n  ")
    );
}

/// Whether every key and value of `shown` is in `actual` (which may hold more: defaults).
fn is_contained(shown: &Value, actual: &Value) -> bool {
    match (shown, actual) {
        (Value::Object(s), Value::Object(a)) => s
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| is_contained(v, av))),
        (Value::Array(s), Value::Array(a)) => {
            s.len() == a.len() && s.iter().zip(a).all(|(s, a)| is_contained(s, a))
        }
        _ => shown == actual,
    }
}

/// Reads `value` as a `T` and writes it back.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

#[test]
fn readme_example_frames_are_exactly_what_the_types_read_and_write() {
    // The schemas allow unknown fields; this catches a misspelt optional field, and a server
    // example that leaves out a field the engine always sends.
    let mut failures = Vec::new();
    for example in examples(&readme()) {
        for value in &example.values {
            // What the engine reads may leave out fields with defaults; what it writes is exact.
            let (written, engine_writes) = match &example.marker {
                Marker::Client => (round_trip::<ClientFrame>(value), false),
                Marker::InvalidClient => {
                    if round_trip::<ClientFrame>(value).is_ok() {
                        failures.push(format!(
                            "README line {}: {value} is read as a valid request, but shown as invalid",
                            example.line
                        ));
                    }
                    continue;
                }
                Marker::Server => (round_trip::<ServerFrame>(value), true),
                Marker::SupervisorClient => (round_trip::<SupervisorFrame>(value), false),
                Marker::SupervisorServer => (round_trip::<SupervisorServerFrame>(value), true),
                Marker::Http(name) => match name.as_str() {
                    "analytics-report" => (round_trip::<AnalyticsReport>(value), true),
                    "inbound-message" => (round_trip::<InboundMessage>(value), false),
                    "bot-request" => (round_trip::<BotRequest>(value), false),
                    "delivery-report" => (round_trip::<DeliveryReport>(value), false),
                    "ingress-receipt" => (round_trip::<IngressReceipt>(value), true),
                    "outbound-message" => (round_trip::<OutboundMessage>(value), true),
                    other => (Err(format!("no type for http body `{other}`")), false),
                },
            };
            let problem = match written {
                Err(e) => Some(e),
                Ok(w) if engine_writes && w != *value => Some(format!("the engine would write {w}")),
                Ok(w) if !is_contained(value, &w) => Some(format!("fields are ignored: read as {w}")),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                failures.push(format!("README line {}: {value}\n    {problem}", example.line));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples the types disagree with:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn every_supervisor_request_and_board_change_has_an_example_in_the_readme() {
    let requests = generated("protocol/schema/supervisor-frame.json");
    // The request enum is flattened into the frame: its variants are the frame's `oneOf`.
    assert_all_shown(
        "supervisor request type",
        discriminators(&requests, "type"),
        example_values(Marker::SupervisorClient)
            .iter()
            .filter_map(|f| f["type"].as_str().map(str::to_owned))
            .collect(),
    );
    let frames = generated("protocol/schema/supervisor-server-frame.json");
    let shown = example_values(Marker::SupervisorServer);
    assert_all_shown(
        "board change kind",
        discriminators(&frames["$defs"]["BoardEvent"], "kind"),
        shown
            .iter()
            .filter(|f| f["type"] == "pushes")
            .flat_map(|f| f["events"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect(),
    );
    assert_all_shown(
        "supervisor frame type",
        discriminators(&frames, "type"),
        shown
            .iter()
            .filter_map(|f| f["type"].as_str().map(str::to_owned))
            .collect(),
    );
}
