//! The AsyncAPI document holds together: references resolve, every frame has its message.

use super::*;

/// Every `"$ref"` string below `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => found.push(r),
                    _ => refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// The frame `type`s of a tagged enum's schema.
fn frame_types(schema: &Value) -> Vec<String> {
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/properties/type/const")?.as_str())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_asyncapi_reference_points_into_the_document() {
    let doc = asyncapi();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for channel in ["agent", "supervisor", "outbound"] {
        let prefix = format!("#/channels/{channel}/");
        assert!(
            found.iter().any(|r| r.starts_with(&prefix)),
            "nothing refers to the `{channel}` channel's messages"
        );
    }
    let dangling: Vec<&&str> = found
        .iter()
        .filter(|r| r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_none())
        .collect();
    assert!(dangling.is_empty(), "asyncapi refers to nothing at {dangling:?}");
}

#[test]
fn each_socket_has_its_own_message_for_every_frame_type() {
    let doc = asyncapi();
    let sockets = [
        (
            "agent",
            "",
            "ClientFrame",
            "ServerFrame",
            outgoing::<ServerFrame>(),
        ),
        (
            "supervisor",
            "supervisor.",
            "SupervisorFrame",
            "SupervisorServerFrame",
            outgoing::<SupervisorServerFrame>(),
        ),
    ];
    let mut expected = 1; // outboundMessage
    for (channel, prefix, request, frame, frame_schema) in &sockets {
        let types = frame_types(frame_schema);
        assert!(types.len() > 2, "{frame} has only {types:?}");
        expected += types.len() + 1; // and the request
        let payloads = types.iter().map(|t| (t.as_str(), format!("{frame}.{t}")));
        for (key, payload) in payloads.chain([("request", request.to_string())]) {
            let id = format!("{prefix}{key}");
            assert_eq!(
                doc["channels"][channel]["messages"][key]["$ref"],
                format!("#/components/messages/{id}"),
                "channel `{channel}`, message `{key}`"
            );
            assert_eq!(
                doc["components"]["messages"][&id]["payload"]["$ref"],
                format!("#/components/schemas/{payload}"),
                "payload of `{id}`"
            );
        }
    }
    assert_eq!(
        doc["components"]["messages"].as_object().map(Map::len),
        Some(expected),
        "two sockets' messages share an id"
    );
    assert_eq!(doc["channels"]["supervisor"]["address"], SUPERVISOR_WS_PATH);
}

#[test]
fn every_operation_uses_messages_of_its_own_channel() {
    let doc = asyncapi();
    let operations = doc["operations"].as_object().expect("operations");
    assert!(operations.contains_key("sendSupervisorRequest"));
    assert!(operations.contains_key("receiveSupervisorFrames"));
    for (name, operation) in operations {
        for part in [operation, &operation["reply"]] {
            let Some(channel) = part["channel"]["$ref"].as_str() else {
                continue;
            };
            let messages = part["messages"].as_array().expect("messages");
            assert!(!messages.is_empty(), "{name} has no messages");
            for message in messages {
                let reference = message["$ref"].as_str().unwrap_or_default();
                assert!(
                    reference.starts_with(&format!("{channel}/messages/")),
                    "{name} uses {reference}, which is not in {channel}"
                );
            }
        }
    }
}
