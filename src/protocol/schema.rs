//! Generates the files of `protocol/` from the types: a JSON Schema (draft 2020-12) for every
//! frame and HTTP body, and an AsyncAPI 3.0 document of the agent and supervisor WebSockets and
//! the outbound webhook. `tests/protocol_drift.rs` regenerates them and fails when the checked-in files differ.
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
    BotRequest, ClientFrame, DeliveryReport, InboundMessage, IngressReceipt, OutboundMessage, ServerFrame,
    PROTOCOL_VERSION,
};

/// Where the agent WebSocket lives, relative to the engine's address.
const AGENT_WS_PATH: &str = "/v1/agent/ws";

/// Where the supervisor WebSocket lives.
const SUPERVISOR_WS_PATH: &str = "/v1/supervisor/ws";

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
            "protocol/schema/http/delivery-report.json",
            incoming::<DeliveryReport>(),
        ),
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
    supervisor_frame: Value,
    supervisor_server_frame: Value,
    outbound_message: Value,
}

/// Client frames as the engine reads them, server frames and outbound messages as it writes
/// them, all in one `components.schemas`.
fn asyncapi_schemas() -> AsyncApiSchemas {
    let mut reader = asyncapi_generator(SchemaSettings::draft07().for_deserialize());
    let mut client_frame = reader.subschema_for::<ClientFrame>().to_value();
    let mut supervisor_frame = reader.subschema_for::<SupervisorFrame>().to_value();
    let read = reader.take_definitions(true);

    let mut writer = asyncapi_generator(SchemaSettings::draft07().for_serialize());
    let server_frame = writer.subschema_for::<ServerFrame>().to_value();
    let supervisor_server_frame = writer.subschema_for::<SupervisorServerFrame>().to_value();
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
    rename_refs(&mut supervisor_frame, &conflicts);
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
        supervisor_frame,
        supervisor_server_frame,
        outbound_message,
    }
}

/// A message of a WebSocket channel.
struct FrameMessage {
    /// Its key in the channel: the frame's `type` (`welcome`), or `request`.
    key: String,
    /// Its key in `components.messages`, unique across channels (`supervisor.welcome`).
    id: String,
    message: Value,
}

/// Splits the schema of a server frame enum (`frame`, a reference to e.g. `ServerFrame`) into
/// one schema per frame `type` (`ServerFrame.welcome`, …) and returns a message for each, in
/// the order of the enum, with ids `{prefix}{type}`.
fn server_frame_messages(schemas: &mut Map<String, Value>, frame: &Value, prefix: &str) -> Vec<FrameMessage> {
    let Some(name) = schema_name(frame).map(str::to_owned) else {
        return Vec::new();
    };
    let Some(Value::Object(mut enum_schema)) = schemas.get(&name).cloned() else {
        return Vec::new();
    };
    let variants = match enum_schema.remove("oneOf") {
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
        let id = format!("{prefix}{kind}");
        let reference = json!({ "$ref": format!("#/components/schemas/{name}.{kind}") });
        let summary = variant["description"].as_str().unwrap_or_default().to_owned();
        schemas.insert(format!("{name}.{kind}"), variant);
        let mut message = json!({
            "name": id,
            "title": format!("`{kind}` frame"),
            "summary": summary,
            "contentType": "application/json",
            "payload": reference,
        });
        if kind == "ok" || kind == "error" {
            message["correlationId"] = json!({ "$ref": "#/components/correlationIds/requestId" });
        }
        refs.push(reference);
        messages.push(FrameMessage {
            key: kind,
            id,
            message,
        });
    }
    enum_schema.insert("oneOf".into(), Value::Array(refs));
    schemas.insert(name, Value::Object(enum_schema));
    messages
}

/// One WebSocket of the engine: requests answered by `ok` or `error`, and frames from the engine.
struct Socket {
    /// The channel's key.
    channel: &'static str,
    address: &'static str,
    title: &'static str,
    description: &'static str,
    /// Whose token opens it.
    token: &'static str,
    /// Prefixed to its messages' keys in `components.messages`, so that two sockets' frames of
    /// the same `type` do not collide.
    message_prefix: &'static str,
    /// The keys and titles of its two operations.
    send_operation: (&'static str, &'static str),
    receive_operation: (&'static str, &'static str),
    /// Who sends the requests, as in "a request from {client}".
    client: &'static str,
    receive_summary: &'static str,
    /// References to the schemas of its request frame and of its server frame enum.
    request: Value,
    server_frame: Value,
}

/// What a [`Socket`] adds to the document.
struct SocketParts {
    channel: Value,
    operations: Vec<(String, Value)>,
    /// Keyed by their ids in `components.messages`.
    messages: Vec<(String, Value)>,
}

/// The channel of a socket, its operations (send a request with an `ok`/`error` reply; receive
/// frames) and its messages; splits its server frame schema on the way.
fn socket_parts(schemas: &mut Map<String, Value>, socket: Socket) -> SocketParts {
    let Socket {
        channel,
        address,
        title,
        description,
        token,
        message_prefix,
        send_operation,
        receive_operation,
        client,
        receive_summary,
        request,
        server_frame,
    } = socket;
    let request = FrameMessage {
        key: "request".into(),
        id: format!("{message_prefix}request"),
        message: json!({
            "name": format!("{message_prefix}request"),
            "title": "A request",
            "summary": format!("A request from {client}; answered by exactly one `ok` or `error` with the same `id`."),
            "contentType": "application/json",
            "correlationId": { "$ref": "#/components/correlationIds/requestId" },
            "payload": request,
        }),
    };
    let frames = server_frame_messages(schemas, &server_frame, message_prefix);

    let in_channel = |key: &str| json!({ "$ref": format!("#/channels/{channel}/messages/{key}") });
    let receive_messages: Vec<Value> = frames.iter().map(|m| in_channel(&m.key)).collect();
    let reply_messages: Vec<Value> = frames
        .iter()
        .filter(|m| m.key == "ok" || m.key == "error")
        .map(|m| in_channel(&m.key))
        .collect();
    let channel_ref = json!({ "$ref": format!("#/channels/{channel}") });
    let operations = vec![
        (
            send_operation.0.to_owned(),
            json!({
                "action": "send",
                "title": send_operation.1,
                "channel": channel_ref,
                "messages": [in_channel(&request.key)],
                "reply": { "channel": channel_ref, "messages": reply_messages },
            }),
        ),
        (
            receive_operation.0.to_owned(),
            json!({
                "action": "receive",
                "title": receive_operation.1,
                "summary": receive_summary,
                "channel": channel_ref,
                "messages": receive_messages,
            }),
        ),
    ];

    let all = std::iter::once(request).chain(frames);
    let mut channel_messages = Map::new();
    let mut messages = Vec::new();
    for FrameMessage { key, id, message } in all {
        channel_messages.insert(key, json!({ "$ref": format!("#/components/messages/{id}") }));
        messages.push((id, message));
    }
    let channel = json!({
        "address": address,
        "title": title,
        "description": description,
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
                            "description": format!("{token} (or send `Authorization: Bearer TOKEN`)."),
                        },
                    },
                },
                "bindingVersion": "0.1.0",
            },
        },
    });
    SocketParts {
        channel,
        operations,
        messages,
    }
}

/// The AsyncAPI 3.0 document, from the point of view of a client of the engine: an agent's
/// browser on the agent WebSocket, a supervisor's client on the supervisor WebSocket, and the
/// connector that receives the outbound webhook.
fn asyncapi() -> Value {
    let AsyncApiSchemas {
        mut schemas,
        client_frame,
        server_frame,
        supervisor_frame,
        supervisor_server_frame,
        outbound_message,
    } = asyncapi_schemas();
    let sockets = [
        Socket {
            channel: "agent",
            address: AGENT_WS_PATH,
            title: "Agent WebSocket",
            description: "One connection of an agent (a tab, a device). The first frame is `welcome`; every \
                request gets exactly one `ok` or `error`; pushes carry a per-agent `seq` (R17).",
            token: "The agent's token",
            message_prefix: "",
            send_operation: ("sendRequest", "Send a request"),
            receive_operation: ("receiveFrames", "Receive frames"),
            client: "an agent's client",
            receive_summary: "`welcome` once, the replies to requests, and pushes.",
            request: client_frame,
            server_frame,
        },
        Socket {
            channel: "supervisor",
            address: SUPERVISOR_WS_PATH,
            title: "Supervisor WebSocket",
            description:
                "One connection of a supervisor's client to the live board (R14, R15). It needs the \
                supervisor or admin role: any other token gets HTTP 403 `forbidden` before the upgrade. The \
                first frame is `welcome`; every request gets exactly one `ok` or `error`; nothing is pushed \
                before the first `subscribe`, whose reply is the board. Changes after it come in `pushes` \
                frames, every event with its `seq`.",
            token: "A supervisor's or admin's token",
            message_prefix: "supervisor.",
            send_operation: ("sendSupervisorRequest", "Send a supervisor request"),
            receive_operation: ("receiveSupervisorFrames", "Receive supervisor frames"),
            client: "a supervisor's client",
            receive_summary: "`welcome` once, the replies to requests, and the board's changes in `pushes` \
                after a `subscribe`.",
            request: supervisor_frame,
            server_frame: supervisor_server_frame,
        },
    ];
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for socket in sockets {
        let key = socket.channel;
        let parts = socket_parts(&mut schemas, socket);
        channels.insert(key.into(), parts.channel);
        operations.extend(parts.operations);
        messages.extend(parts.messages);
    }

    channels.insert(
        "outbound".into(),
        json!({
            "address": null,
            "title": "Outbound webhook",
            "description": "The configured webhook URL. Each message is POSTed as JSON, in order; a connection \
                error or non-2xx answer is retried with exponential backoff, up to 5 attempts in all.",
            "servers": [{ "$ref": "#/servers/connector" }],
            "messages": {
                "outboundMessage": { "$ref": "#/components/messages/outboundMessage" },
            },
        }),
    );
    operations.insert(
        "receiveOutboundMessage".into(),
        json!({
            "action": "receive",
            "title": "Receive a message for a customer",
            "channel": { "$ref": "#/channels/outbound" },
            "messages": [{ "$ref": "#/channels/outbound/messages/outboundMessage" }],
            "bindings": { "http": { "method": "POST", "bindingVersion": "0.3.0" } },
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
                Written from the point of view of a client of the engine: an agent's browser on the agent \
                WebSocket and a supervisor's client on the supervisor WebSocket (`send` = to the engine, \
                `receive` = from it), and the channel connector that receives outbound messages. See \
                protocol/README.md for the rules behind every frame.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "engine": {
                "host": DEFAULT_HOST,
                "protocol": "ws",
                "description": "The engine's default address. Authenticate with the token in the `token` \
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
        "channels": Value::Object(channels),
        "operations": Value::Object(operations),
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
                    "description": "The agent's or supervisor's token.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The agent's or supervisor's token as a bearer token.",
                },
            },
        },
    })
}

/// The `Name` of a `{"$ref": "#/components/schemas/Name"}`.
fn schema_name(reference: &Value) -> Option<&str> {
    reference
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")
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

#[cfg(test)]
mod tests;
