//! The HTTP side: creating agents through the admin API, and customers writing through the
//! channel ingress (`POST /v1/channels/{channel}/messages`), from a fixed pool of workers;
//! each below its workspace's API root (see [`Workspaces`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::clock;
use crate::stats::{Path, Stats};
use crate::workspaces::Workspaces;

/// Agents per admin batch: the engine takes bodies up to 256 KiB.
const AGENT_BATCH: usize = 1_000;

/// The channel every scenario writes on: web chat has no messaging window, so a closed chat
/// can always be reopened and a returning customer is always within reach.
pub(crate) const CHANNEL: &str = "webchat";

/// An HTTP client for the harness: keep-alive, no Nagle, a short timeout.
pub(crate) fn client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// One agent for `POST /v1/admin/agents/batch`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AgentSpec {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) limit: u32,
    pub(crate) token: String,
    /// Its skills with their levels (`routing --skills`); none otherwise, so the body is as before.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) skills: BTreeMap<String, u8>,
}

/// `n` agents `lt-a0…` with tokens `lt-a0-tok…`.
pub(crate) fn agents(n: usize, limit: u32) -> Vec<AgentSpec> {
    (0..n)
        .map(|i| AgentSpec {
            id: format!("lt-a{i}"),
            name: format!("Load agent {i}"),
            role: "agent",
            limit,
            token: format!("lt-a{i}-tok"),
            skills: BTreeMap::new(),
        })
        .collect()
}

/// Creates (or replaces) `agents` on the engine at `base`, in `default` (the unprefixed paths).
pub(crate) async fn create_agents(
    client: &reqwest::Client,
    base: &str,
    agents: &[AgentSpec],
) -> anyhow::Result<()> {
    create_agents_below(client, &format!("{base}/v1"), agents).await
}

/// Creates agent `i` of `agents` in its workspace (`workspaces.of(i)`), a batch per workspace.
pub(crate) async fn create_spread(
    client: &reqwest::Client,
    base: &str,
    workspaces: &Workspaces,
    agents: &[AgentSpec],
) -> anyhow::Result<()> {
    for k in 0..workspaces.len() {
        let theirs: Vec<AgentSpec> = workspaces
            .members(k, agents.len())
            .map(|i| agents[i].clone())
            .collect();
        create_agents_below(client, &format!("{base}{}", workspaces.api(k)), &theirs).await?;
    }
    Ok(())
}

/// Creates (or replaces) `agents` through the admin API below `api` (`…/v1` or `…/v1/w/{id}`).
async fn create_agents_below(
    client: &reqwest::Client,
    api: &str,
    agents: &[AgentSpec],
) -> anyhow::Result<()> {
    for chunk in agents.chunks(AGENT_BATCH) {
        // A cluster answers 503 with Retry-After while the workspace moves between nodes
        // (nodes started together settle their shares in the first rounds): asked again, as
        // the answer says, for a bounded number of times.
        let mut moving = 0;
        loop {
            let response = client
                .post(format!("{api}/admin/agents/batch"))
                .json(chunk)
                .send()
                .await
                .with_context(|| format!("POST {api}/admin/agents/batch"))?;
            let status = response.status();
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && moving < MOVING_RETRIES {
                moving += 1;
                tokio::time::sleep(MOVING_RETRY_AFTER).await;
                continue;
            }
            anyhow::ensure!(
                status.is_success(),
                "creating agents: {status}: {}",
                response.text().await.unwrap_or_default()
            );
            break;
        }
    }
    Ok(())
}

/// How often, and how far apart, an admin call answered 503 (a workspace moving between a
/// cluster's nodes, `Retry-After: 1`) is made again: 30 s in all.
const MOVING_RETRIES: u32 = 30;
const MOVING_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Serialize)]
struct Inbound<'a> {
    from: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    skills: &'a BTreeMap<String, u8>,
}

#[derive(Deserialize)]
struct ApiError {
    code: String,
}

/// What the engine answered to an ingress post (the fields the harness needs).
#[derive(Debug, Deserialize)]
pub(crate) struct Receipt {
    /// The chat the message went to.
    pub(crate) chat_id: Option<String>,
}

/// Posts one customer message; returns the receipt, or counts the error and returns `None`.
async fn post(client: &reqwest::Client, url: &reqwest::Url, body: Vec<u8>, stats: &Stats) -> Option<Vec<u8>> {
    let t0 = clock::now();
    let outcome = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let response = match outcome {
        Ok(r) => r,
        Err(e) => {
            stats.error(if e.is_timeout() {
                "http: timed out"
            } else {
                "http: failed"
            });
            return None;
        }
    };
    let status = response.status();
    let bytes = response.bytes().await.ok()?;
    stats.record(Path::IngressHttp, clock::micros_since(t0));
    if !status.is_success() {
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => stats.error(&format!("http {}: {}", status.as_u16(), e.code)),
            Err(_) => stats.error(&format!("http {}", status.as_u16())),
        }
        return None;
    }
    Some(bytes.to_vec())
}

fn body(from: &str, text: &str, name: Option<&str>, ask: &Ask) -> Vec<u8> {
    let inbound = Inbound {
        from,
        text,
        name,
        queue: ask.queue.as_deref(),
        skills: &ask.skills,
    };
    serde_json::to_vec(&inbound).expect("a plain struct serializes")
}

/// What a new chat asks of routing at ingress (R19, R20); empty asks nothing, and the body
/// carries neither field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ask {
    /// The queue it asks for; none means its channel's.
    pub(crate) queue: Option<String>,
    /// Skills it requires, with their least levels.
    pub(crate) skills: BTreeMap<String, u8>,
}

/// Send times of numbered new chats (routing), as [`clock::stamp`]s; 0 = not sent.
pub(crate) type Stamps = Arc<Vec<AtomicU64>>;

/// A customer message for the pool to post, and when it was queued.
pub(crate) struct Job {
    pub(crate) what: Message,
    pub(crate) queued: std::time::Instant,
}

impl Job {
    /// `what`, queued now.
    pub(crate) fn new(what: Message) -> Self {
        Self {
            what,
            queued: clock::now(),
        }
    }
}

/// Which customer message.
pub(crate) enum Message {
    /// A reopen-storm customer of workspace number `workspace` answers its reopened chat.
    /// The send time goes into `stamp` just before the request leaves, for the agent that
    /// waits for the push.
    Reply {
        from: Arc<str>,
        workspace: usize,
        stamp: Arc<AtomicU64>,
    },
    /// New customer number `n` writes (routing), in workspace `Workspaces::of(n)`; its name is
    /// `n<n>` so that the offer can be matched to its send time in `stamps`. `ask` goes into
    /// the body as is.
    New {
        n: u64,
        prefix: Arc<str>,
        stamps: Stamps,
        ask: Ask,
    },
}

/// A fixed set of workers posting customer messages from one queue.
#[derive(Clone)]
pub(crate) struct Pool {
    jobs: async_channel::Sender<Job>,
}

/// Each workspace's ingress URL on each node (`[node][workspace]`), parsed once: reqwest
/// would parse a string URL on every request.
fn ingress_urls(bases: &[String], workspaces: &Workspaces) -> anyhow::Result<Arc<[Arc<[reqwest::Url]>]>> {
    bases
        .iter()
        .map(|base| {
            (0..workspaces.len())
                .map(|k| {
                    let url = format!("{base}{}/channels/{CHANNEL}/messages", workspaces.api(k));
                    reqwest::Url::parse(&url).with_context(|| format!("bad ingress URL {url}"))
                })
                .collect()
        })
        .collect()
}

/// The ingress URLs worker `w` posts to: those of node `w % n`, so that the workers (each
/// over its keep-alive connection) spread evenly over a cluster's nodes.
fn worker_urls(urls: &[Arc<[reqwest::Url]>], w: usize) -> Arc<[reqwest::Url]> {
    urls[crate::cluster::node_of(w, urls.len())].clone()
}

impl Pool {
    /// Starts `workers` workers posting to the ingress of `workspaces`, worker `w` on node
    /// `w % n` of `bases`.
    pub(crate) fn start(
        client: reqwest::Client,
        bases: &[String],
        workspaces: &Workspaces,
        workers: usize,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let (jobs, queue) = async_channel::unbounded::<Job>();
        let urls = ingress_urls(bases, workspaces)?;
        for w in 0..workers.max(1) {
            let (client, queue, urls, stats) = (
                client.clone(),
                queue.clone(),
                worker_urls(&urls, w),
                stats.clone(),
            );
            let workspaces = workspaces.clone();
            tokio::spawn(async move {
                while let Ok(job) = queue.recv().await {
                    stats.record(Path::IngressQueue, clock::micros_since(job.queued));
                    let (body, workspace) = match &job.what {
                        Message::Reply {
                            from,
                            workspace,
                            stamp,
                        } => {
                            let body = body(from, "thanks, go on", None, &Ask::default());
                            stamp.store(clock::stamp(), Ordering::Release);
                            (body, *workspace)
                        }
                        Message::New {
                            n,
                            prefix,
                            stamps,
                            ask,
                        } => {
                            let body = body(
                                &format!("{prefix}{n}"),
                                "hello, I need help",
                                Some(&format!("n{n}")),
                                ask,
                            );
                            if let Some(s) = stamps.get(*n as usize) {
                                s.store(clock::stamp(), Ordering::Release);
                            }
                            (body, workspaces.of(*n as usize))
                        }
                    };
                    Stats::bump(&stats.ops);
                    post(&client, &urls[workspace], body, &stats).await;
                }
            });
        }
        Ok(Self { jobs })
    }

    /// Queues a job (the queue is unbounded; drivers bound what they put in flight).
    pub(crate) fn submit(&self, job: Job) {
        let _ = self.jobs.try_send(job);
    }

    /// Stops the workers once the queue is empty.
    pub(crate) fn close(&self) {
        self.jobs.close();
    }
}

/// How many HTTP workers a run needs by default: enough for every cycle in flight to have its
/// customer's message posted at once, within reason.
pub(crate) fn workers_for(in_flight: u64, asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| (in_flight as usize).clamp(16, 256))
}

/// Every customer `from` writes once, in workspace number `workspace_of[i]` of
/// `workspaces`, `concurrency` at a time (worker `w` on node `w % n` of `bases`); returns the chat each message went to, in order
/// (`None` where the post failed).
pub(crate) async fn first_contacts(
    client: &reqwest::Client,
    bases: &[String],
    workspaces: &Workspaces,
    from: Arc<Vec<String>>,
    workspace_of: Arc<Vec<usize>>,
    concurrency: usize,
    stats: Arc<Stats>,
) -> Vec<Option<String>> {
    let Ok(urls) = ingress_urls(bases, workspaces) else {
        return vec![None; from.len()];
    };
    let workers = concurrency.max(1);
    let mut set = JoinSet::new();
    for w in 0..workers {
        let (client, urls, from, stats) =
            (client.clone(), worker_urls(&urls, w), from.clone(), stats.clone());
        let workspace_of = workspace_of.clone();
        set.spawn(async move {
            let mut got = Vec::new();
            for i in (w..from.len()).step_by(workers) {
                let answer = post(
                    &client,
                    &urls[workspace_of[i]],
                    body(&from[i], "hello", None, &Ask::default()),
                    &stats,
                )
                .await;
                let chat = answer
                    .and_then(|b| serde_json::from_slice::<Receipt>(&b).ok())
                    .and_then(|r| r.chat_id);
                got.push((i, chat));
            }
            got
        });
    }
    let mut chats = vec![None; from.len()];
    while let Some(done) = set.join_next().await {
        for (i, chat) in done.unwrap_or_default() {
            chats[i] = chat;
        }
    }
    chats
}
