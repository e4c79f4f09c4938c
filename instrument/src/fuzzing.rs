//! The checks the fuzz targets run (`fuzz/`), here so that the kept corpus replays in every
//! `cargo test` run (`tests/e2e/corpus.rs`): an input the fuzzer once found interesting stays a
//! regression test.

use rmcp::model::Extensions;

use crate::user::{JwtUser, Resolution, TrustedHeaders, UserResolver, hash_email};

/// The secret of the target's resolver; the fuzzer's tokens are signed with it only in claims mode.
const SECRET: &[u8] = b"archon-fuzz-secret";

/// Who is calling: bearer tokens and identity headers through the resolvers a server chains.
///
/// First byte even: the rest is an `Authorization` header (and, after the first newline, a
/// trusted identity header). No token the fuzzer makes may resolve to a user: it does not know
/// the secret, so a user here is a forgery (`alg: none`, algorithm confusion, a signature not
/// checked). First byte odd: the rest, if JSON, is signed as the claims with the right secret,
/// so claims reading runs on arbitrary JSON; a user then has the token's non-empty `sub` and the
/// audience the resolver requires.
///
/// ```text
/// // fuzz/fuzz_targets/user_resolution.rs
/// fuzz_target!(|data: &[u8]| archon_mcp_instrument::fuzzing::user_resolution(data));
/// ```
pub fn user_resolution(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let jwt = JwtUser::hs256(SECRET).audience("archon").department_claim("team");
    if mode % 2 == 0 {
        let (authorization, identity) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        if let Ok(token) = std::str::from_utf8(authorization) {
            assert!(!matches!(jwt.verify(token), Resolution::User(_)), "forged token accepted: {token:?}");
        }
        let Some(extensions) = with_headers(&[("authorization", authorization), ("x-forwarded-user", identity)]) else {
            return;
        };
        assert!(!matches!(jwt.resolve(&extensions), Resolution::User(_)), "forged header accepted");
        if let Resolution::User(user) = TrustedHeaders::new().resolve(&extensions) {
            assert!(!user.id.is_empty());
            let hashed = hash_email(&user.id);
            let hex = hashed.strip_prefix("sha256:").expect("a sha256: prefix");
            assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    } else if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) {
        let token = crate::user::hs256_token(SECRET, &claims);
        if let Resolution::User(user) = jwt.verify(&token) {
            assert_eq!(claims.get("sub").and_then(|s| s.as_str()), Some(user.id.as_str()));
            assert!(!user.id.is_empty());
            let ours = |a: &serde_json::Value| a.as_str() == Some("archon");
            let audience = &claims["aud"];
            assert!(ours(audience) || audience.as_array().is_some_and(|all| all.iter().any(ours)), "{claims}");
        }
    }
}

fn with_headers(pairs: &[(&str, &[u8])]) -> Option<Extensions> {
    let mut request = http::Request::builder();
    for (name, value) in pairs {
        request = request.header(*name, http::HeaderValue::from_bytes(value).ok()?);
    }
    let (parts, ()) = request.body(()).ok()?.into_parts();
    let mut extensions = Extensions::new();
    extensions.insert(parts);
    Some(extensions)
}
