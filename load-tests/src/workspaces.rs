//! `--workspaces N` (R27): the load spread evenly over N workspaces of one engine, each created
//! over the platform API (`POST /v1/platform/workspaces`) and reached below
//! `/v1/w/{workspace}/…`. Agent `i` belongs to workspace `i % N`, and so do the customers it
//! serves. With one workspace nothing is created and every path is the unprefixed one of
//! `default`, exactly as before workspaces, so that `--workspaces 1` measures what earlier runs
//! measured.

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

/// The ids the harness gives its workspaces: `lt-w0`, `lt-w1`, …
const ID_PREFIX: &str = "lt-w";

/// Where each workspace's API is: `/v1`, or `/v1/w/{id}` for each of several.
#[derive(Clone, Debug)]
pub(crate) struct Workspaces {
    apis: Arc<[String]>,
}

#[derive(Serialize)]
struct CreateWorkspace<'a> {
    id: &'a str,
    name: String,
}

impl Workspaces {
    /// `default` alone, on the unprefixed paths (and what the floor and the peer serve).
    pub(crate) fn unprefixed() -> Self {
        Self {
            apis: Arc::from(vec!["/v1".to_owned()]),
        }
    }

    /// `n` workspaces on the engine at `base`: the unprefixed `default` for one, else `lt-w0…`
    /// created over the platform API (one that exists already, from an earlier run against
    /// the same engine, is used as it is).
    pub(crate) async fn create(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(n >= 1, "--workspaces must be at least 1");
        if n == 1 {
            return Ok(Self::unprefixed());
        }
        let mut apis = Vec::with_capacity(n);
        for k in 0..n {
            let id = format!("{ID_PREFIX}{k}");
            create_one(client, base, &id).await?;
            apis.push(format!("/v1/w/{id}"));
        }
        eprintln!(
            "workspaces: {n} ({ID_PREFIX}0 … {ID_PREFIX}{}) over the platform API",
            n - 1
        );
        Ok(Self { apis: apis.into() })
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.apis.len()
    }

    /// The workspace of agent (or new chat) number `i`: round robin, so each has its share.
    pub(crate) fn of(&self, i: usize) -> usize {
        i % self.apis.len()
    }

    /// Workspace `k`'s API root, `/v1` or `/v1/w/{id}`: the paths below it are the same.
    pub(crate) fn api(&self, k: usize) -> &str {
        &self.apis[k]
    }

    /// The indexes of the items among `0..n` that belong to workspace `k` (see [`Self::of`]).
    pub(crate) fn members(&self, k: usize, n: usize) -> impl Iterator<Item = usize> {
        (k..n).step_by(self.apis.len())
    }
}

/// `POST /v1/platform/workspaces` for `id`; a workspace `id` that is there already will do.
async fn create_one(client: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<()> {
    let body = CreateWorkspace {
        id,
        name: format!("Load test {id}"),
    };
    let response = client
        .post(format!("{base}/v1/platform/workspaces"))
        .json(&body)
        .send()
        .await
        .context("POST /v1/platform/workspaces")?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let refusal = response.text().await.unwrap_or_default();
    let existing = client
        .get(format!("{base}/v1/platform/workspaces/{id}"))
        .send()
        .await
        .context("GET /v1/platform/workspaces/{id}")?;
    anyhow::ensure!(
        existing.status().is_success(),
        "creating workspace {id}: {status}: {refusal}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r27_one_workspace_is_the_unprefixed_default_and_several_share_the_load_evenly() {
        let one = Workspaces::unprefixed();
        assert_eq!((one.len(), one.of(7), one.api(0)), (1, 0, "/v1"));
        let three = Workspaces {
            apis: Arc::from(vec![
                "/v1/w/lt-w0".to_owned(),
                "/v1/w/lt-w1".to_owned(),
                "/v1/w/lt-w2".to_owned(),
            ]),
        };
        let counts: Vec<usize> = (0..3).map(|k| three.members(k, 10).count()).collect();
        assert_eq!(counts, [4, 3, 3]);
        assert!(three.members(1, 10).all(|i| three.of(i) == 1));
    }
}
