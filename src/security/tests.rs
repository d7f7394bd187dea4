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

/// A secured setup with `admin_key` (default's) and `platform_key` as given.
fn keyed(admin_key: Option<&str>, platform_key: Option<&str>) -> Security {
    Security {
        admin_key: admin_key.map(str::to_owned),
        platform_key: platform_key.map(str::to_owned),
        ..Security::default()
    }
}

#[test]
fn r27_a_workspace_admin_api_takes_its_own_key_or_the_platform_key_and_refuses_others_alike() {
    let security = keyed(Some("default-key"), Some("platform-key"));
    let acme = TokenHash::of("acme-key");
    let globex = TokenHash::of("globex-key");
    assert_eq!(security.admit_admin(Some(&acme), Some("acme-key")), Ok(()));
    assert_eq!(security.admit_admin(Some(&acme), Some("platform-key")), Ok(()));
    assert_eq!(
        security.admit_admin(None, Some("platform-key")),
        Ok(()),
        "the platform key also reaches a workspace that does not exist (which then answers not_found)"
    );
    // Another workspace's key, default's, a made-up one, and any key on a workspace that does
    // not exist: one refusal, one text.
    for (own, presented) in [
        (Some(&acme), "globex-key"),
        (Some(&acme), "default-key"),
        (Some(&acme), "made-up"),
        (Some(&acme), ""),
        (None, "acme-key"),
        (Some(&globex), "acme-key"),
    ] {
        let refused = security.admit_admin(own, Some(presented));
        assert_eq!(refused, Err(KeyError::Wrong("admin")), "{presented:?}");
        assert_eq!(refused.map_err(|e| e.to_string()), Err("wrong admin key".into()));
    }
    assert_eq!(
        security.admit_admin(Some(&acme), None),
        Err(KeyError::Missing("admin"))
    );
}

#[test]
fn r27_the_platform_api_takes_the_platform_key_else_the_admin_key_and_no_workspace_s() {
    let security = keyed(Some("default-key"), Some("platform-key"));
    assert_eq!(security.admit_platform(Some("platform-key")), Ok(()));
    for presented in ["default-key", "acme-key", "platform-key "] {
        assert_eq!(
            security.admit_platform(Some(presented)),
            Err(KeyError::Wrong("platform")),
            "{presented:?}"
        );
    }
    assert_eq!(security.admit_platform(None), Err(KeyError::Missing("platform")));

    // Without a platform key, the admin key is the platform's, as before there was one: it
    // opens the platform API and, since it could rotate any workspace's key, every admin API.
    let security = keyed(Some("default-key"), None);
    assert_eq!(security.admit_platform(Some("default-key")), Ok(()));
    assert_eq!(
        security.admit_admin(Some(&TokenHash::of("acme-key")), Some("default-key")),
        Ok(())
    );

    // Development: no key at all, both open.
    let open = keyed(None, None);
    assert_eq!(open.admit_platform(None), Ok(()));
    assert_eq!(open.admit_admin(Some(&TokenHash::of("acme-key")), None), Ok(()));
}

#[test]
fn r27_a_generated_admin_key_is_256_url_safe_random_bits_checked_by_its_digest() {
    let first = AdminKey::generate().expect("the system's generator works");
    let second = AdminKey::generate().expect("the system's generator works");
    let digest = first.digest();
    let key = first.reveal();
    assert_eq!(key.len(), 43, "32 bytes in base64 without padding: {key}");
    assert!(
        key.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{key}"
    );
    assert_ne!(key, second.reveal());
    assert_eq!(digest, TokenHash::of(&key));
    assert!(!format!("{digest:?}").contains(&key));
}
