//! Generates the files of `protocol/` from the types: a JSON Schema (draft 2020-12) for every
//! frame and HTTP body, and an AsyncAPI 3.0 document of the agent WebSocket and the outbound
//! webhook. `tests/protocol_drift.rs` regenerates them and fails when the checked-in files differ.
//!
//! What the engine reads is described as it deserializes (a field with a default may be left
//! out); what it writes as it serializes (an `Option` field is always there, `null` when empty),
//! so that a client author sees exactly which fields every frame carries.

use std::path::Path;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::supervisor::{AnalyticsReport, SupervisorFrame, SupervisorServerFrame};
use super::{
    BotRequest, ClientFrame, InboundMessage, IngressReceipt, OutboundMessage, ServerFrame, PROTOCOL_VERSION,
};

/// Where the agent WebSocket lives, relative to the engine's address.
const AGENT_WS_PATH: &str = "/v1/agent/ws";

/// The engine's default listening address.
const DEFAULT_HOST: &str = "127.0.0.1:8080";

/// Every generated file: its path relative to the repository root, and its content.
pub fn files() -> Vec<(String, String)> {
    let files = [
        ("protocol/schema/client-frame.json", incoming::<ClientFrame>()),
        ("protocol/schema/server-frame.json", outgoing::<ServerFrame>()),
        (
            "protocol/schema/supervisor-frame.json",
            incoming::<SupervisorFrame>(),
        ),
        (
            "protocol/schema/supervisor-server-frame.json",
            outgoing::<SupervisorServerFrame>(),
        ),
        (
            "protocol/schema/http/analytics-report.json",
            outgoing::<AnalyticsReport>(),
        ),
        (
            "protocol/schema/http/inbound-message.json",
            incoming::<InboundMessage>(),
        ),
        ("protocol/schema/http/bot-request.json", incoming::<BotRequest>()),
        (
            "protocol/schema/http/ingress-receipt.json",
            outgoing::<IngressReceipt>(),
        ),
        (
            "protocol/schema/http/outbound-message.json",
            outgoing::<OutboundMessage>(),
        ),
        ("protocol/asyncapi.json", asyncapi()),
    ];
    files
        .into_iter()
        .map(|(path, value)| (path.to_owned(), pretty(value)))
        .collect()
}

/// Writes every generated file under `root` (the repository root), creating folders as needed.
pub fn write_all(root: &Path) -> std::io::Result<()> {
    for (path, content) in files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, content)?;
    }
    Ok(())
}

/// The schema of something the engine reads (what `schemars::schema_for!` gives).
fn incoming<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The schema of something the engine writes.
fn outgoing<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// Pretty JSON with every object's keys sorted and a trailing newline, so the output does not
/// depend on whether some dependency turned on serde_json's `preserve_order`.
fn pretty(value: Value) -> String {
    format!("{:#}\n", sorted(value))
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Definitions for an AsyncAPI document: draft-07 style (AsyncAPI's schema format is a superset
/// of draft 07) and referenced as `#/components/schemas/Name`.
fn asyncapi_generator(settings: SchemaSettings) -> SchemaGenerator {
    settings
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// The schemas of the AsyncAPI document, keyed by name, and references to the frames in them.
struct AsyncApiSchemas {
    schemas: Map<String, Value>,
    client_frame: Value,
    server_frame: Value,
    outbound_message: Value,
}

/// Client frames as the engine reads them, server frames and outbound messages as it writes
/// them, all in one `components.schemas`.
fn asyncapi_schemas() -> AsyncApiSchemas {
    let mut reader = asyncapi_generator(SchemaSettings::draft07().for_deserialize());
    let mut client_frame = reader.subschema_for::<ClientFrame>().to_value();
    let read = reader.take_definitions(true);

    let mut writer = asyncapi_generator(SchemaSettings::draft07().for_serialize());
    let server_frame = writer.subschema_for::<ServerFrame>().to_value();
    let outbound_message = writer.subschema_for::<OutboundMessage>().to_value();
    let mut schemas = writer.take_definitions(true);

    // A type both read and written is described once, unless the two contracts differ; then
    // the engine's reading of it gets a name of its own.
    let conflicts: Vec<String> = read
        .iter()
        .filter(|(name, schema)| schemas.get(*name).is_some_and(|s| s != *schema))
        .map(|(name, _)| name.clone())
        .collect();
    rename_refs(&mut client_frame, &conflicts);
    for (name, mut schema) in read {
        rename_refs(&mut schema, &conflicts);
        let name = if conflicts.contains(&name) {
            format!("{name}.client")
        } else {
            name
        };
        schemas.insert(name, schema);
    }
    AsyncApiSchemas {
        schemas,
        client_frame,
        server_frame,
        outbound_message,
    }
}

/// Splits the `ServerFrame` schema into one schema per frame `type` (`ServerFrame.welcome`, …)
/// and returns a message for each, in the order of the enum.
fn server_frame_messages(schemas: &mut Map<String, Value>, server_frame: &Value) -> Vec<(String, Value)> {
    let Some(Value::Object(mut frame)) = schema_named(server_frame, schemas).cloned() else {
        return Vec::new();
    };
    let variants = match frame.remove("oneOf") {
        Some(Value::Array(variants)) => variants,
        _ => Vec::new(),
    };
    let mut refs = Vec::new();
    let mut messages = Vec::new();
    for variant in variants {
        let Some(kind) = variant.pointer("/properties/type/const").and_then(Value::as_str) else {
            continue;
        };
        let kind = kind.to_owned();
        let reference = json!({ "$ref": format!("#/components/schemas/ServerFrame.{kind}") });
        let summary = variant["description"].as_str().unwrap_or_default().to_owned();
        schemas.insert(format!("ServerFrame.{kind}"), variant);
        let mut message = json!({
            "name": kind,
            "title": format!("`{kind}` frame"),
            "summary": summary,
            "contentType": "application/json",
            "payload": reference,
        });
        if kind == "ok" || kind == "error" {
            message["correlationId"] = json!({ "$ref": "#/components/correlationIds/requestId" });
        }
        refs.push(reference);
        messages.push((kind, message));
    }
    frame.insert("oneOf".into(), Value::Array(refs));
    schemas.insert("ServerFrame".into(), Value::Object(frame));
    messages
}

/// The AsyncAPI 3.0 document, from the point of view of a client of the engine: an agent's
/// browser on the WebSocket, and the connector that receives the outbound webhook.
fn asyncapi() -> Value {
    let AsyncApiSchemas {
        mut schemas,
        client_frame,
        server_frame,
        outbound_message,
    } = asyncapi_schemas();
    let server_messages = server_frame_messages(&mut schemas, &server_frame);

    let channel_message = |name: &str| json!({ "$ref": format!("#/channels/agent/messages/{name}") });
    let mut channel_messages = Map::new();
    for name in std::iter::once("request").chain(server_messages.iter().map(|(k, _)| k.as_str())) {
        channel_messages.insert(
            name.to_owned(),
            json!({ "$ref": format!("#/components/messages/{name}") }),
        );
    }
    let receive_messages: Vec<Value> = server_messages.iter().map(|(k, _)| channel_message(k)).collect();
    let reply_messages: Vec<Value> = server_messages
        .iter()
        .filter(|(k, _)| k == "ok" || k == "error")
        .map(|(k, _)| channel_message(k))
        .collect();

    let mut messages: Map<String, Value> = server_messages.into_iter().collect();
    messages.insert(
        "request".into(),
        json!({
            "name": "request",
            "title": "A request",
            "summary": "A request from an agent's client; answered by exactly one `ok` or `error` with the same `id`.",
            "contentType": "application/json",
            "correlationId": { "$ref": "#/components/correlationIds/requestId" },
            "payload": client_frame,
        }),
    );
    messages.insert(
        "outboundMessage".into(),
        json!({
            "name": "outbound_message",
            "title": "A message to a customer",
            "summary": "A reopen notice, agent message or template push, for the channel connector to deliver.",
            "contentType": "application/json",
            "payload": outbound_message,
        }),
    );

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Switchboard",
            "version": PROTOCOL_VERSION.to_string(),
            "description": "The wire protocol of Switchboard, a real-time routing engine for customer-support chat. \
                Written from the point of view of a client of the engine: an agent's browser on the WebSocket \
                (`send` = to the engine, `receive` = from it) and the channel connector that receives outbound \
                messages. See protocol/README.md for the rules behind every frame.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "engine": {
                "host": DEFAULT_HOST,
                "protocol": "ws",
                "description": "The engine's default address. Authenticate with the agent's token in the `token` \
                    query parameter or an `Authorization: Bearer` header; an unknown token gets HTTP 401.",
                "security": [
                    { "$ref": "#/components/securitySchemes/tokenQuery" },
                    { "$ref": "#/components/securitySchemes/bearer" },
                ],
            },
            "connector": {
                "host": "{host}",
                "protocol": "http",
                "description": "The outbound webhook: the URL the engine is configured to POST customer-bound messages to.",
                "variables": {
                    "host": { "description": "Host (and port) of the configured webhook URL." },
                },
            },
        },
        "channels": {
            "agent": {
                "address": AGENT_WS_PATH,
                "title": "Agent WebSocket",
                "description": "One connection of an agent (a tab, a device). The first frame is `welcome`; every \
                    request gets exactly one `ok` or `error`; pushes carry a per-agent `seq` (R17).",
                "servers": [{ "$ref": "#/servers/engine" }],
                "messages": Value::Object(channel_messages),
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "The agent's token (or send `Authorization: Bearer TOKEN`).",
                                },
                            },
                        },
                        "bindingVersion": "0.1.0",
                    },
                },
            },
            "outbound": {
                "address": null,
                "title": "Outbound webhook",
                "description": "The configured webhook URL. Each message is POSTed as JSON, in order; a connection \
                    error or non-2xx answer is retried with exponential backoff, up to 5 attempts in all.",
                "servers": [{ "$ref": "#/servers/connector" }],
                "messages": {
                    "outboundMessage": { "$ref": "#/components/messages/outboundMessage" },
                },
            },
        },
        "operations": {
            "sendRequest": {
                "action": "send",
                "title": "Send a request",
                "channel": { "$ref": "#/channels/agent" },
                "messages": [channel_message("request")],
                "reply": {
                    "channel": { "$ref": "#/channels/agent" },
                    "messages": reply_messages,
                },
            },
            "receiveFrames": {
                "action": "receive",
                "title": "Receive frames",
                "summary": "`welcome` once, the replies to requests, and pushes.",
                "channel": { "$ref": "#/channels/agent" },
                "messages": receive_messages,
            },
            "receiveOutboundMessage": {
                "action": "receive",
                "title": "Receive a message for a customer",
                "channel": { "$ref": "#/channels/outbound" },
                "messages": [{ "$ref": "#/channels/outbound/messages/outboundMessage" }],
                "bindings": { "http": { "method": "POST", "bindingVersion": "0.3.0" } },
            },
        },
        "components": {
            "schemas": Value::Object(schemas),
            "messages": Value::Object(messages),
            "correlationIds": {
                "requestId": {
                    "description": "A request's `id`, echoed in its one reply.",
                    "location": "$message.payload#/id",
                },
            },
            "securitySchemes": {
                "tokenQuery": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "The agent's token.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The agent's token as a bearer token.",
                },
            },
        },
    })
}

/// The definition a `{"$ref": "#/components/schemas/Name"}` points at.
fn schema_named<'a>(reference: &Value, schemas: &'a Map<String, Value>) -> Option<&'a Value> {
    let name = reference
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")?;
    schemas.get(name)
}

/// Points references to the `names` definitions at their `.client` copies.
fn rename_refs(value: &mut Value, names: &[String]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let target = v
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .filter(|name| key == "$ref" && names.iter().any(|n| n == name))
                    .map(str::to_owned);
                match target {
                    Some(name) => *v = Value::String(format!("#/components/schemas/{name}.client")),
                    None => rename_refs(v, names),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, names)),
        _ => {}
    }
}
