//! The browser client, served by the engine itself: the agent desk at `/`, the supervisor
//! wall at `/wall`, and their stylesheet and scripts at `/assets/{file}`. Each workspace has
//! its own at `/w/{workspace}/` and `/w/{workspace}/wall` (R27): the same pages, whose scripts
//! read the workspace from their path and talk to `/v1/w/{workspace}/…`; the unprefixed ones
//! are `default`'s. The files in `web/`,
//! and the TypeScript client's compiled `clients/typescript/dist/client.js` (checked in), are
//! embedded in the binary, so there is no separate server and no build step.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::tenant::Tenant;
use crate::core::ErrorCode;

/// One embedded file under `/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything `/assets/{file}` serves.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/app.css"),
    },
    Asset {
        name: "socket.js",
        content_type: JS,
        body: include_str!("../../web/socket.js"),
    },
    // The TypeScript client package's compiled module (one file, no imports), so that the
    // pages can use it with no build step; its drift test keeps it in step with its source.
    Asset {
        name: "client.js",
        content_type: JS,
        body: include_str!("../../clients/typescript/dist/client.js"),
    },
    Asset {
        name: "desk.js",
        content_type: JS,
        body: include_str!("../../web/desk.js"),
    },
    Asset {
        name: "wall.js",
        content_type: JS,
        body: include_str!("../../web/wall.js"),
    },
];

const DESK_HTML: &str = include_str!("../../web/desk.html");
const WALL_HTML: &str = include_str!("../../web/wall.html");

/// The pages hold a token and talk only to this engine: no inline code, no framing, no
/// foreign origins, and no token leaking in a Referer.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the agent desk.
pub async fn desk() -> Response {
    page(DESK_HTML)
}

/// `GET /wall`: the supervisor wall.
pub async fn wall() -> Response {
    page(WALL_HTML)
}

/// `GET /w/{workspace}/`: the agent desk of a workspace. Served for a workspace not served here
/// too (R27): the page is the same static file for every one, and a 404 would tell which exist;
/// its socket is refused there as wrong credentials are. `not_found` for a malformed id.
pub async fn workspace_desk(_workspace: Tenant) -> Response {
    page(DESK_HTML)
}

/// `GET /w/{workspace}/wall`: the supervisor wall of a workspace served here.
pub async fn workspace_wall(_workspace: Tenant) -> Response {
    page(WALL_HTML)
}

/// `GET /w/{workspace}`: to the desk at `/w/{workspace}/`, below which the page reads its
/// workspace (and keeps its token).
pub async fn workspace_root(workspace: Tenant) -> Redirect {
    Redirect::permanent(&format!("/w/{}/", workspace.id()))
}

/// `GET /assets/{file}`: the stylesheet and the scripts; 404 `not_found` for anything else.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => file_response(asset.content_type, asset.body),
        None => ApiError::new(ErrorCode::NotFound, format!("no asset `{file}`")).into_response(),
    }
}

fn page(html: &'static str) -> Response {
    let mut response = file_response("text/html; charset=utf-8", html);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

// `no-cache`: a browser revalidates, so a new engine's client is picked up on reload.
fn file_response(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/assets/…` path named in `text` (in `href`, `src` or an `import`).
    fn asset_references(text: &str) -> Vec<&str> {
        text.split("/assets/")
            .skip(1)
            .map(|rest| rest.split(['"', '\'', '`', ')', ' ']).next().unwrap_or(rest))
            .collect()
    }

    #[test]
    fn every_embedded_page_references_only_assets_that_exist() {
        let files = [("desk.html", DESK_HTML), ("wall.html", WALL_HTML)]
            .into_iter()
            .chain(ASSETS.iter().map(|a| (a.name, a.body)));
        for (name, text) in files {
            for reference in asset_references(text) {
                assert!(
                    ASSETS.iter().any(|a| a.name == reference),
                    "{name} references /assets/{reference}, which is not embedded"
                );
            }
        }
        for (page, script) in [(DESK_HTML, "desk.js"), (WALL_HTML, "wall.js")] {
            let used = asset_references(page);
            assert!(used.contains(&"app.css") && used.contains(&script), "{used:?}");
        }
    }

    #[tokio::test]
    async fn assets_are_served_with_their_type_and_unknown_ones_are_not_found() {
        let js = asset(Path("desk.js".to_owned())).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(js.headers()[header::CACHE_CONTROL], "no-cache");
        let client = asset(Path("client.js".to_owned())).await;
        assert_eq!(client.status(), StatusCode::OK);
        assert_eq!(client.headers()[header::CONTENT_TYPE], JS);
        let missing = asset(Path("../Cargo.toml".to_owned())).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let html = desk().await;
        assert_eq!(html.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }

    /// A server of `default` and `acme` on 127.0.0.1, over the real routes; stops when dropped.
    struct TwoWorkspaces {
        base: String,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    impl TwoWorkspaces {
        async fn start() -> Self {
            use crate::clock::ManualClock;
            use crate::engine::outbound::Outbound;
            use crate::engine::{Engine, EngineConfig};
            use crate::ids::WorkspaceId;
            use crate::workspaces::{Background, Workspace, Workspaces};
            use std::sync::Arc;

            let engine = || {
                let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
                Engine::new(EngineConfig::default(), Arc::new(clock), Outbound::channel().0)
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("its address"));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let boards = crate::gateway::board_runtime::start()?;
                let background = || Background::board_only(boards.handle());
                let workspaces = Arc::new(Workspaces::single(engine(), background()));
                let acme = WorkspaceId::parse("acme").expect("a workspace id");
                workspaces
                    .insert(Workspace::start(acme, engine(), background()))
                    .expect("acme once");
                let shutdown = async move {
                    let _ = stopped.await;
                };
                let drain = std::time::Duration::from_secs(1);
                crate::gateway::serve_then_unload(
                    listener,
                    workspaces,
                    boards,
                    Default::default(),
                    None,
                    shutdown,
                    drain,
                )
                .await
            });
            Self { base, _stop: stop }
        }

        /// `GET path`, redirects not followed: its status, `Location` and body.
        async fn get(&self, path: &str) -> (StatusCode, Option<String>, String) {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client");
            let response = client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET");
            let status = response.status();
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|l| l.to_str().expect("an ASCII Location").to_owned());
            if status == StatusCode::OK {
                assert_eq!(
                    response.headers()[header::CONTENT_TYPE],
                    "text/html; charset=utf-8",
                    "{path}"
                );
                assert!(
                    response.headers().contains_key(header::CONTENT_SECURITY_POLICY),
                    "{path}"
                );
            }
            (status, location, response.text().await.expect("a body"))
        }
    }

    #[tokio::test]
    async fn r27_workspace_pages_are_served() {
        let server = TwoWorkspaces::start().await;
        for (path, html) in [
            ("/w/acme/", DESK_HTML),
            ("/w/acme/wall", WALL_HTML),
            ("/w/default/", DESK_HTML),
            ("/w/default/wall", WALL_HTML),
            ("/", DESK_HTML),
            ("/wall", WALL_HTML),
        ] {
            let (status, _, body) = server.get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body, html, "{path}");
        }
        // Without its slash, to the desk: below `/w/acme/` the page reads its workspace.
        let (status, location, _) = server.get("/w/acme").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(location.as_deref(), Some("/w/acme/"));
        // A workspace not served here cannot be told from one that is (R27): the same pages.
        for (path, html) in [("/w/nope/", DESK_HTML), ("/w/nope/wall", WALL_HTML)] {
            let (status, _, body) = server.get(path).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, html), "{path}");
        }
        let (status, location, _) = server.get("/w/nope").await;
        assert_eq!(
            (status, location.as_deref()),
            (StatusCode::PERMANENT_REDIRECT, Some("/w/nope/"))
        );
        // An id that cannot be a workspace's tells nothing either: not found.
        let (status, _, body) = server.get("/w/Not%20an%20id/").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["code"], "not_found", "{body}");
    }
}
