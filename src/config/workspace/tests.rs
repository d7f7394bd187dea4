use std::path::Path;

use super::*;
use crate::config::Config;

fn parse(json: &str) -> Result<WorkspaceSettings, ConfigError> {
    WorkspaceSettings::from_json(json, &EngineConfig::default())
}

#[test]
fn r27_default_s_settings_are_the_configuration_s_top_level_keys() {
    let config = Config::parse(
        "grace_secs = 90\nreopen_notice = \"Back again\"\n\
         [security]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\ningress_key = \"the-ingress-key\"\n\
         [[queues]]\nid = \"all\"\nchannels = [\"sms\"]\n\
         [channels.sms]\nwindow_secs = 3600\nwebhook_secret = \"an-sms-webhook-secret\"\n\
         [platforms.telegram]\nsecret_token = \"tg-secret\"\nbot_token = \"1:x\"\n",
        Path::new("t.toml"),
    )
    .expect("valid");
    let settings = config.default_workspace();
    // The same engine, whichever way it is built.
    let engine = settings.engine(config.engine_base()).expect("valid");
    assert_eq!(engine.grace, chrono::Duration::seconds(90));
    assert_eq!(engine.reopen_notice, "Back again");
    assert_eq!(engine.queues[0].id.as_str(), "all");
    assert_eq!(
        engine.policies.of(Channel::Sms).window,
        config.engine().expect("valid").policies.of(Channel::Sms).window
    );
    // And they read back from their own JSON as they were.
    let again = parse(&settings.to_json()).expect("its own JSON reads back");
    assert_eq!(again.to_json(), settings.to_json());
    let credentials = settings.credentials(&Credentials::default()).expect("valid");
    assert_eq!(
        credentials.ingress_key,
        crate::security::IngressKey::Required("the-ingress-key".into())
    );
    assert_eq!(
        credentials.webhook_secrets[&Channel::Sms],
        "an-sms-webhook-secret"
    );
    assert_eq!(
        credentials.platforms[&Channel::Telegram].get("secret_token"),
        Ok("tg-secret")
    );
}

#[test]
fn r27_bad_settings_are_refused_naming_the_field() {
    let cases = [
        (r#"{"grace_secs": -1}"#, "grace_secs"),
        (r#"{"grace_secs": "soon"}"#, "grace_secs"),
        (r#"{"colour": "red"}"#, "colour"),
        (
            r#"{"queues": [{"id": "a", "sla_secs": "x"}]}"#,
            "queues[0].sla_secs",
        ),
        (
            r#"{"queues": [{"id": "a", "overflow": "b"}]}"#,
            "queues.a.overflow",
        ),
        (r#"{"channels": {"fax": {}}}"#, "fax"),
        (
            r#"{"channels": {"sms": {"webhook_secret": "short"}}}"#,
            "channels.sms.webhook_secret",
        ),
        (
            r#"{"platforms": {"telegram": {"bot_token": "1:x"}}}"#,
            "platforms.telegram.secret_token",
        ),
        (r#"{"platforms": {"wechat": {"token": "x"}}}"#, "platforms.wechat"),
        (r#"{"ingress_key": " "}"#, "ingress_key"),
        (r#"{"reopen_notice": ""}"#, "reopen_notice"),
        (r#"{} {}"#, "trailing"),
    ];
    for (json, named) in cases {
        let err = parse(json).expect_err(json).reason();
        assert!(err.contains(named), "{json}: {err}");
    }
}

#[test]
fn r27_secrets_are_shown_as_set_never_as_they_are() {
    let settings = parse(
        r#"{"ingress_key": "the-ingress-key",
            "channels": {"sms": {"webhook_secret": "an-sms-webhook-secret", "max_len": 300}},
            "platforms": {"whatsapp": {"app_secret": "the-app-secret", "access_token": "EAAG-token",
                                       "phone_number_id": "1065", "base_url": "http://127.0.0.1:1"}}}"#,
    )
    .expect("valid");
    let shown = settings.redacted();
    let text = shown.to_string();
    for secret in [
        "the-ingress-key",
        "an-sms-webhook-secret",
        "the-app-secret",
        "EAAG-token",
    ] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let set = serde_json::json!({ "set": true });
    assert_eq!(shown["ingress_key"], set);
    assert_eq!(shown["channels"]["sms"]["webhook_secret"], set);
    assert_eq!(shown["channels"]["sms"]["max_len"], 300);
    assert_eq!(shown["platforms"]["whatsapp"]["app_secret"], set);
    assert_eq!(shown["platforms"]["whatsapp"]["phone_number_id"], "1065");
    assert_eq!(shown["platforms"]["whatsapp"]["base_url"], "http://127.0.0.1:1");
    // A secret not set is shown as not set; and what is shown cannot be put back as a secret.
    assert!(parse("{}").expect("valid").redacted()["ingress_key"].is_null());
    assert!(parse(&text).is_err(), "a marker is not a secret");
}

#[test]
fn r27_only_what_verifies_calls_changes_without_a_reload() {
    let before = parse(r#"{"ingress_key": "key-one", "grace_secs": 60}"#).expect("valid");
    let new_key = parse(
        r#"{"ingress_key": "key-two", "grace_secs": 60,
            "channels": {"sms": {"webhook_secret": "an-sms-webhook-secret"}}}"#,
    )
    .expect("valid");
    assert!(!before.needs_reload(&new_key));
    let new_grace = parse(r#"{"ingress_key": "key-one", "grace_secs": 90}"#).expect("valid");
    assert!(before.needs_reload(&new_grace));
    let new_platform = parse(
        r#"{"ingress_key": "key-one", "grace_secs": 60, "platforms": {"telegram": {"secret_token": "t"}}}"#,
    )
    .expect("valid");
    assert!(
        before.needs_reload(&new_platform),
        "the outbox sends with the platforms"
    );
}
