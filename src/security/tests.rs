//! The token checks of `security.rs`: times, keys, renewal and the workspace claim (R27).

use chrono::{Duration, TimeZone, Utc};

use super::*;

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("date")
}

fn default() -> WorkspaceId {
    WorkspaceId::default_workspace()
}

fn acme() -> WorkspaceId {
    WorkspaceId::parse("acme").expect("a workspace id")
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A token signed with `SECRET` carrying exactly `claims`.
fn signed(claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("encodes")
}

fn claims(ws: Option<&str>) -> Claims {
    Claims {
        sub: "ana".into(),
        role: Role::Agent.into(),
        ws: ws.map(str::to_owned),
        exp: (now() + Duration::minutes(10)).timestamp(),
        nbf: None,
        iat: Some(now().timestamp()),
        auth_time: None,
    }
}

#[test]
fn a_minted_token_verifies_until_it_expires_and_not_before_its_start() {
    let tokens = Tokens::hs256(b"secret", 0);
    let token = tokens
        .mint(&default(), "ana", Role::Supervisor, now(), Duration::minutes(10))
        .expect("HS256 mints");
    let verified = tokens.verify(&token, now()).expect("valid");
    assert_eq!(verified.agent, AgentId::from("ana"));
    assert_eq!(verified.role, Role::Supervisor);
    assert_eq!(verified.expires_at, Some(now() + Duration::minutes(10)));
    assert!(matches!(
        tokens.verify(&token, now() + Duration::minutes(10)),
        Err(TokenError::Expired(_))
    ));
    assert!(matches!(
        tokens.verify(&token, now() - Duration::seconds(1)),
        Err(TokenError::NotYetValid(_))
    ));
}

#[test]
fn a_token_signed_with_another_key_or_algorithm_is_invalid() {
    let ours = Tokens::hs256(b"secret", 0);
    let theirs = Tokens::hs256(b"guess", 0);
    let forged = theirs
        .mint(&default(), "ana", Role::Admin, now(), Duration::minutes(10))
        .expect("mints");
    assert!(matches!(ours.verify(&forged, now()), Err(TokenError::Invalid(_))));
    // alg "none": a classic forgery.
    let unsigned =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbmEiLCJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9.";
    assert!(matches!(
        ours.verify(unsigned, now()),
        Err(TokenError::Invalid(_))
    ));
    assert!(matches!(
        ours.verify("ana-token", now()),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn origins_are_checked_only_when_a_list_is_configured() {
    let mut security = Security::default();
    assert!(security.origin_allowed(Some("https://evil.example")));
    security.allowed_origins = vec!["https://desk.example".into()];
    assert!(security.origin_allowed(Some("https://desk.example")));
    assert!(!security.origin_allowed(Some("https://evil.example")));
    assert!(security.origin_allowed(None), "not a browser");
}

#[test]
fn secrets_compare_whole() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}

#[test]
fn a_renewal_keeps_agent_role_and_sign_in_and_ends_with_the_session() {
    let tokens = Tokens::hs256(b"0123456789abcdef0123456789abcdef", 0);
    let first = tokens
        .mint(&default(), "ana", Role::Supervisor, now(), Duration::hours(2))
        .expect("mints");
    let presented = tokens.verify(&first, now()).expect("valid");
    let later = now() + Duration::hours(1);
    let renewed = tokens.renew(&presented, later).expect("renews");
    let again = tokens.verify(&renewed.token, later).expect("valid");
    assert_eq!((&again.agent, again.role), (&presented.agent, Role::Supervisor));
    assert_eq!(again.signed_in_at, Some(now()), "the sign-in is carried over");
    assert_eq!(renewed.expires_at, later + Duration::hours(2));

    let at_end = now() + MAX_SESSION;
    assert_eq!(tokens.renew(&again, at_end), Err(TokenError::SessionOver(now())));
    let public = Tokens {
        encoding: None,
        ..tokens.clone()
    };
    assert_eq!(public.renew(&presented, later), Err(TokenError::CannotSign));
}

#[test]
fn r27_a_minted_token_carries_its_workspace_and_opens_only_that_one() {
    let tokens = Tokens::hs256(SECRET, 0);
    let token = tokens
        .mint(&acme(), "ana", Role::Agent, now(), Duration::minutes(10))
        .expect("mints");
    let verified = tokens.verify(&token, now()).expect("valid");
    assert_eq!(verified.workspace, Some(acme()));
    for claimless in [ClaimlessTokens::Default, ClaimlessTokens::Refuse] {
        assert_eq!(
            verified
                .clone()
                .for_workspace(&acme(), claimless)
                .map(|v| v.workspace),
            Ok(Some(acme()))
        );
        assert_eq!(
            verified.clone().for_workspace(&default(), claimless),
            Err(TokenError::OtherWorkspace)
        );
    }
}

#[test]
fn r27_a_foreign_workspace_is_refused_alike_whether_it_exists_or_not() {
    // Nothing here knows which workspaces exist: the refusal cannot depend on it.
    let tokens = Tokens::hs256(SECRET, 0);
    let refusals: Vec<String> = ["acme", "no-such-workspace"]
        .into_iter()
        .map(|ws| {
            let verified = tokens.verify(&signed(&claims(Some(ws))), now()).expect("valid");
            verified
                .for_workspace(&default(), ClaimlessTokens::Default)
                .expect_err("another workspace")
                .to_string()
        })
        .collect();
    assert_eq!(refusals[0], refusals[1]);
    assert!(!refusals[0].contains("acme"), "{}", refusals[0]);
}

#[test]
fn r27_a_claimless_token_opens_default_only_where_allowed() {
    let tokens = Tokens::hs256(SECRET, 0);
    let claimless = tokens.verify(&signed(&claims(None)), now()).expect("valid");
    assert_eq!(claimless.workspace, None);
    let let_in = claimless
        .clone()
        .for_workspace(&default(), ClaimlessTokens::Default)
        .expect("allowed in default");
    assert_eq!(let_in.workspace, Some(default()));
    assert_eq!(
        claimless
            .clone()
            .for_workspace(&default(), ClaimlessTokens::Refuse),
        Err(TokenError::NoWorkspace)
    );
    // Never in another workspace, whatever the switch says.
    assert_eq!(
        claimless.for_workspace(&acme(), ClaimlessTokens::Default),
        Err(TokenError::NoWorkspace)
    );
}

#[test]
fn r27_a_forged_or_malformed_workspace_claim_is_invalid() {
    let ours = Tokens::hs256(SECRET, 0);
    let forged = Tokens::hs256(b"another-key-another-key-another-key", 0)
        .mint(&default(), "ana", Role::Agent, now(), Duration::minutes(10))
        .expect("mints");
    assert!(matches!(ours.verify(&forged, now()), Err(TokenError::Invalid(_))));
    let malformed = signed(&claims(Some("Not A Workspace")));
    assert_eq!(
        ours.verify(&malformed, now()),
        Err(TokenError::Invalid("the `ws` claim is not a workspace id".into()))
    );
}

#[test]
fn r27_a_renewal_keeps_the_workspace_claim() {
    let tokens = Tokens::hs256(SECRET, 0);
    let first = tokens
        .mint(&acme(), "ana", Role::Agent, now(), Duration::hours(1))
        .expect("mints");
    let presented = tokens.verify(&first, now()).expect("valid");
    let renewed = tokens.renew(&presented, now()).expect("renews");
    let again = tokens.verify(&renewed.token, now()).expect("valid");
    assert_eq!(again.workspace, Some(acme()));

    // A claimless token let into `default` comes back naming it.
    let claimless = tokens
        .verify(&signed(&claims(None)), now())
        .and_then(|v| v.for_workspace(&default(), ClaimlessTokens::Default))
        .expect("let in");
    let renewed = tokens.renew(&claimless, now()).expect("renews");
    let again = tokens.verify(&renewed.token, now()).expect("valid");
    assert_eq!(again.workspace, Some(default()));
}
