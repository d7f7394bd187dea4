//! A customer on a channel, as the channel connector delivers it over HTTP.

use std::ops::Index;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::schema;

/// A customer writing on one channel from one address. Cheap to clone, so that many tasks can
/// write as the same customer at once.
#[derive(Clone, Debug)]
pub(crate) struct Customer {
    http: reqwest::Client,
    base: String,
    /// Where the API is: `/v1`, or a workspace's `/v1/w/{workspace}` (R27).
    api: String,
    channel: String,
    address: String,
    /// Name, email and phone, sent with every message as the channel would.
    profile: serde_json::Map<String, Value>,
}

impl Customer {
    pub(super) fn new(http: reqwest::Client, base: String, channel: &str, address: &str) -> Self {
        Self {
            http,
            base,
            api: "/v1".to_owned(),
            channel: channel.to_owned(),
            address: address.to_owned(),
            profile: serde_json::Map::new(),
        }
    }

    /// The same customer, whose channel posts to workspace `workspace`'s paths
    /// (`/v1/w/{workspace}/channels/…`).
    pub(crate) fn in_workspace(mut self, workspace: &str) -> Self {
        self.api = format!("/v1/w/{workspace}");
        self
    }

    /// The same customer, whose channel tells its name with every message.
    pub(crate) fn named(self, name: &str) -> Self {
        self.with_profile("name", name)
    }

    /// The same customer, whose channel tells its email with every message.
    pub(crate) fn with_email(self, email: &str) -> Self {
        self.with_profile("email", email)
    }

    /// The same customer, whose channel tells its phone number with every message.
    pub(crate) fn with_phone(self, phone: &str) -> Self {
        self.with_profile("phone", phone)
    }

    /// The same customer, whose channel asks routing for `ask` (`queue`, `language`, `skills`,
    /// `attributes`) with every message (R19).
    pub(crate) fn asking(mut self, ask: Value) -> Self {
        let fields = ask.as_object().expect("routing fields as an object").clone();
        self.profile.extend(fields);
        self
    }

    fn with_profile(mut self, field: &str, value: &str) -> Self {
        self.profile.insert(field.to_owned(), json!(value));
        self
    }

    /// The customer's address on its channel.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The customer's channel.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// The customer writes `text` (`POST /v1/channels/{channel}/messages`).
    pub(crate) async fn says(&self, text: &str) -> Receipt {
        let mut body = json!({ "from": self.address, "text": text });
        body.as_object_mut()
            .expect("an object")
            .extend(self.profile.clone());
        schema::check(schema::INBOUND_MESSAGE, &body);
        self.post("messages", body).await
    }

    /// The customer enters a bot journey (`…/bot/start`).
    pub(crate) async fn starts_bot(&self) -> Receipt {
        let body = json!({ "from": self.address });
        schema::check(schema::BOT_REQUEST, &body);
        self.post("bot/start", body).await
    }

    /// The bot hands the customer over to a human (`…/bot/handover`).
    pub(crate) async fn handed_over(&self) -> Receipt {
        let body = json!({ "from": self.address });
        schema::check(schema::BOT_REQUEST, &body);
        self.post("bot/handover", body).await
    }

    /// The customer tries to write `text`: the status and body answered, whatever they are.
    pub(crate) async fn tries_to_say(&self, text: &str) -> (StatusCode, Value) {
        let mut body = json!({ "from": self.address, "text": text });
        body.as_object_mut()
            .expect("an object")
            .extend(self.profile.clone());
        schema::check(schema::INBOUND_MESSAGE, &body);
        self.try_post("messages", &body).await
    }

    /// The customer tries to enter a bot journey: the status and body answered.
    pub(crate) async fn tries_to_start_bot(&self) -> (StatusCode, Value) {
        let body = json!({ "from": self.address });
        schema::check(schema::BOT_REQUEST, &body);
        self.try_post("bot/start", &body).await
    }

    async fn post(&self, what: &str, body: Value) -> Receipt {
        let (status, receipt) = self.try_post(what, &body).await;
        assert_eq!(status, StatusCode::OK, "POST …/{what} {body}: {receipt:#}");
        schema::check(schema::INGRESS_RECEIPT, &receipt);
        Receipt(receipt)
    }

    async fn try_post(&self, what: &str, body: &Value) -> (StatusCode, Value) {
        let url = format!("{}{}/channels/{}/{what}", self.base, self.api, self.channel);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// What the engine did with a customer's message or bot call.
#[derive(Clone, Debug)]
pub(crate) struct Receipt(pub(crate) Value);

impl Receipt {
    /// The chat the message went to.
    pub(crate) fn chat_id(&self) -> String {
        self.0["chat_id"]
            .as_str()
            .unwrap_or_else(|| panic!("the receipt names no chat: {:#}", self.0))
            .to_owned()
    }
}

impl Index<&str> for Receipt {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.0[key]
    }
}
