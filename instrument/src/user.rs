//! Who is calling: the [`UserResolver`] trait and its built-ins.
//!
//! A resolver runs on every request, synchronously and without IO. A missing or bad credential
//! never fails the call: the user is just unknown, and [`UserFailures`] counts why.
//!
//! ```
//! use archon_mcp_instrument::user::{EnvUser, JwtUser, UserResolverExt};
//!
//! // Verified bearer tokens first, then the static user of a stdio deployment.
//! let resolver = JwtUser::hs256(b"secret").department_claim("team").or(EnvUser::from_env());
//! # let _ = resolver;
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use rmcp::model::Extensions;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A resolved user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// The stable principal (`sub`, proxy user id, …) → `user.id`.
    pub id: String,
    /// Email → `user.email` (or `user.hash` in hashing mode).
    pub email: Option<String>,
    /// Display name → `user.full_name`.
    pub full_name: Option<String>,
    /// Login name → `user.name`.
    pub name: Option<String>,
    /// Department or team → `archon.user.department`.
    pub department: Option<String>,
}

impl UserInfo {
    /// A user with just a principal.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), ..Self::default() }
    }

    /// Sets the email.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    pub fn with_full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }

    /// Sets the department.
    pub fn with_department(mut self, department: impl Into<String>) -> Self {
        self.department = Some(department.into());
        self
    }
}

/// The user an application's own auth layer puts into the HTTP request's extensions; found by
/// [`ExtensionUser`].
///
/// ```
/// use archon_mcp_instrument::user::{UserContext, UserInfo};
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(UserContext(UserInfo::new("u-42")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserContext(pub UserInfo);

/// What a resolver found.
///
/// ```
/// use archon_mcp_instrument::user::{Resolution, UserInfo};
///
/// let found = Resolution::User(UserInfo::new("u-42").into());
/// # drop(found);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// A user; shared, so a resolver that keeps one (a fixed user, a cache) hands it out
    /// without copying it on every request.
    User(Arc<UserInfo>),
    /// No credential this resolver understands; the next resolver may try.
    Absent,
    /// A credential that failed verification: the user stays unknown, for the reason given.
    Invalid(&'static str),
}

/// Finds the user of a request from its extensions (which hold `http::request::Parts` on HTTP).
pub trait UserResolver: Send + Sync + 'static {
    /// Resolves the user of one request. Must not block or do IO.
    fn resolve(&self, extensions: &Extensions) -> Resolution;
}

impl UserResolver for Box<dyn UserResolver> {
    fn resolve(&self, extensions: &Extensions) -> Resolution {
        (**self).resolve(extensions)
    }
}

/// Chaining for resolvers.
pub trait UserResolverExt: UserResolver + Sized {
    /// Tries `self`, then `next` when `self` finds no credential. An invalid credential stops
    /// the chain: a bad token must not fall back to a weaker source.
    fn or<R: UserResolver>(self, next: R) -> Or<Self, R> {
        Or(self, next)
    }
}

impl<T: UserResolver> UserResolverExt for T {}

/// Two resolvers, tried in order (see [`UserResolverExt::or`]).
#[derive(Debug, Clone)]
pub struct Or<A, B>(A, B);

impl<A: UserResolver, B: UserResolver> UserResolver for Or<A, B> {
    fn resolve(&self, extensions: &Extensions) -> Resolution {
        match self.0.resolve(extensions) {
            Resolution::Absent => self.1.resolve(extensions),
            found => found,
        }
    }
}

/// Nobody: every request is anonymous.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUser;

impl UserResolver for NoUser {
    fn resolve(&self, _: &Extensions) -> Resolution {
        Resolution::Absent
    }
}

fn headers(extensions: &Extensions) -> Option<&http::HeaderMap> {
    extensions.get::<http::request::Parts>().map(|parts| &parts.headers)
}

/// A verified JWT bearer token (`Authorization: Bearer …`), HS256 or RS256.
///
/// Claims: `sub` → id, `email`, `name` or `user_metadata.full_name` → display name,
/// `preferred_username` → login, and a configurable department claim (default `department`).
/// `exp` is required and checked; `aud`/`iss` are checked when configured.
#[derive(Clone)]
pub struct JwtUser {
    /// `None` for an empty HS256 secret: every token is refused, never checked against it.
    key: Option<DecodingKey>,
    validation: Validation,
    department_claim: String,
}

impl std::fmt::Debug for JwtUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtUser").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl JwtUser {
    /// Tokens signed with a shared HS256 secret (Supabase's `SUPABASE_JWT_SECRET`, …).
    ///
    /// An empty (or blank) secret verifies nothing: every token is refused as `no_secret`, since
    /// anyone can sign with an empty key. RFC 7518 asks for 32 bytes or more.
    ///
    /// ```
    /// use archon_mcp_instrument::user::{JwtUser, Resolution};
    /// assert!(matches!(JwtUser::hs256(b" ").verify("a.b.c"), Resolution::Invalid("no_secret")));
    /// ```
    pub fn hs256(secret: &[u8]) -> Self {
        if secret.trim_ascii().is_empty() {
            tracing::error!("JwtUser::hs256 was given an empty secret: every token will be refused");
            let mut refusing = Self::with_key(DecodingKey::from_secret(b"-"), Algorithm::HS256);
            refusing.key = None;
            return refusing;
        }
        Self::with_key(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// Tokens signed with RS256, verified with a PEM public key.
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self::with_key(DecodingKey::from_rsa_pem(public_key_pem)?, Algorithm::RS256))
    }

    fn with_key(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.validate_aud = false;
        // `nbf`, when present, with the same leeway as `exp`: a token valid from later is refused.
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self { key: Some(key), validation, department_claim: "department".into() }
    }

    /// Requires this audience: a token without an `aud` claim, or with other audiences only,
    /// is refused. (Without this, `aud` is not checked: Supabase tokens say "authenticated".)
    pub fn audience(mut self, audience: &str) -> Self {
        // jsonwebtoken checks `aud` only when the token has one, and only with validate_aud:
        // both must be set for the audience to be required (found by fuzz/user_resolution).
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation.required_spec_claims.insert("aud".into());
        self
    }

    /// Requires this issuer: a token without an `iss` claim, or another issuer, is refused.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation.required_spec_claims.insert("iss".into());
        self
    }

    /// Reads the department from this claim (a top-level string, or in `user_metadata` /
    /// `app_metadata`).
    pub fn department_claim(mut self, claim: &str) -> Self {
        self.department_claim = claim.into();
        self
    }

    /// Verifies a raw token.
    pub fn verify(&self, token: &str) -> Resolution {
        let Some(key) = &self.key else { return Resolution::Invalid("no_secret") };
        match jsonwebtoken::decode::<Value>(token, key, &self.validation) {
            Ok(data) => self.user_from_claims(&data.claims),
            Err(e) => Resolution::Invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not_yet_valid",
                ErrorKind::InvalidSignature => "bad_signature",
                ErrorKind::InvalidAlgorithm => "wrong_algorithm",
                ErrorKind::InvalidAudience => "wrong_audience",
                ErrorKind::InvalidIssuer => "wrong_issuer",
                ErrorKind::MissingRequiredClaim(_) => "missing_claim",
                _ => "malformed",
            }),
        }
    }

    fn user_from_claims(&self, claims: &Value) -> Resolution {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let Some(id) = claims.get("sub").and_then(text) else {
            return Resolution::Invalid("missing_sub");
        };
        // A NUL or another control character would be cut or shown differently downstream, and
        // two principals could become one.
        if id.chars().any(char::is_control) {
            return Resolution::Invalid("bad_sub");
        }
        let nested = |key: &str| {
            claims
                .get(key)
                .and_then(text)
                .or_else(|| claims.get("user_metadata").and_then(|m| m.get(key)).and_then(text))
                .or_else(|| claims.get("app_metadata").and_then(|m| m.get(key)).and_then(text))
        };
        Resolution::User(Arc::new(UserInfo {
            id,
            email: claims.get("email").and_then(text),
            full_name: claims.get("name").and_then(text).or_else(|| nested("full_name")),
            name: claims.get("preferred_username").and_then(text),
            department: nested(&self.department_claim),
        }))
    }
}

impl UserResolver for JwtUser {
    fn resolve(&self, extensions: &Extensions) -> Resolution {
        let Some(value) = headers(extensions).and_then(|h| h.get(http::header::AUTHORIZATION)) else {
            return Resolution::Absent;
        };
        let Some(token) =
            value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        else {
            return Resolution::Invalid("not_bearer");
        };
        self.verify(token.trim())
    }
}

/// Signs `claims` with HS256 under `secret`: a token [`JwtUser::hs256`] with the same secret
/// accepts (given an `exp` in the future). For tests, demos and load generators; an identity
/// provider issues the tokens of a deployment.
///
/// ```
/// use archon_mcp_instrument::user::{JwtUser, hs256_token};
///
/// let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
/// let token = hs256_token(b"a-test-secret", &serde_json::json!({"sub": "ada", "exp": exp}));
/// assert!(matches!(JwtUser::hs256(b"a-test-secret").verify(&token), archon_mcp_instrument::user::Resolution::User(_)));
/// ```
pub fn hs256_token(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing of JSON claims cannot fail")
}

/// Identity headers set by a trusted auth proxy (oauth2-proxy, an ingress, …). Only use behind
/// a proxy that strips these headers from client requests.
#[derive(Debug, Clone)]
pub struct TrustedHeaders {
    id: String,
    email: String,
    name: String,
    department: String,
}

impl Default for TrustedHeaders {
    fn default() -> Self {
        Self {
            id: "x-forwarded-user".into(),
            email: "x-forwarded-email".into(),
            name: "x-forwarded-preferred-username".into(),
            department: "x-forwarded-groups".into(),
        }
    }
}

impl TrustedHeaders {
    /// oauth2-proxy's header names.
    pub fn new() -> Self {
        Self::default()
    }

    /// The header carrying the principal.
    pub fn id_header(mut self, name: &str) -> Self {
        self.id = name.to_ascii_lowercase();
        self
    }

    /// The header carrying the email.
    pub fn email_header(mut self, name: &str) -> Self {
        self.email = name.to_ascii_lowercase();
        self
    }

    /// The header carrying the department.
    pub fn department_header(mut self, name: &str) -> Self {
        self.department = name.to_ascii_lowercase();
        self
    }
}

impl UserResolver for TrustedHeaders {
    fn resolve(&self, extensions: &Extensions) -> Resolution {
        let Some(headers) = headers(extensions) else { return Resolution::Absent };
        let get =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(str::to_owned);
        match get(&self.id) {
            Some(id) => Resolution::User(Arc::new(UserInfo {
                id,
                email: get(&self.email),
                full_name: None,
                name: get(&self.name),
                department: get(&self.department),
            })),
            None => Resolution::Absent,
        }
    }
}

/// The [`UserContext`] the server's own auth layer put into the request's extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtensionUser;

impl UserResolver for ExtensionUser {
    fn resolve(&self, extensions: &Extensions) -> Resolution {
        let from_http = extensions.get::<http::request::Parts>().and_then(|p| p.extensions.get::<UserContext>());
        match from_http.or_else(|| extensions.get::<UserContext>()) {
            Some(UserContext(user)) => Resolution::User(Arc::new(user.clone())),
            None => Resolution::Absent,
        }
    }
}

/// One static user for the whole process, from `ARCHON_USER_ID`, `ARCHON_USER_EMAIL`,
/// `ARCHON_USER_NAME` and `ARCHON_USER_DEPARTMENT` — the stdio case, where the process belongs
/// to the person who started it.
#[derive(Debug, Clone, Default)]
pub struct EnvUser(Option<Arc<UserInfo>>);

impl EnvUser {
    /// Reads the variables once.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self(var("ARCHON_USER_ID").map(|id| {
            Arc::new(UserInfo {
                id,
                email: var("ARCHON_USER_EMAIL"),
                full_name: var("ARCHON_USER_NAME"),
                name: None,
                department: var("ARCHON_USER_DEPARTMENT"),
            })
        }))
    }

    /// A fixed user.
    pub fn fixed(user: UserInfo) -> Self {
        Self(Some(Arc::new(user)))
    }
}

impl UserResolver for EnvUser {
    fn resolve(&self, _: &Extensions) -> Resolution {
        self.0.clone().map_or(Resolution::Absent, Resolution::User)
    }
}

/// `sha256:` + hex SHA-256 of the trimmed, lower-cased email: what hashing mode sends as
/// `user.hash` instead of the address.
///
/// ```
/// use archon_mcp_instrument::user::hash_email;
/// assert_eq!(hash_email(" Ada@Example.com"), hash_email("ada@example.com"));
/// assert!(hash_email("ada@example.com").starts_with("sha256:"));
/// ```
pub fn hash_email(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Counts of credentials that failed verification, by reason, since the process started.
#[derive(Debug)]
pub struct UserFailures;

static FAILURES: [(&str, AtomicU64); 13] = [
    ("expired", AtomicU64::new(0)),
    ("not_yet_valid", AtomicU64::new(0)),
    ("bad_signature", AtomicU64::new(0)),
    ("wrong_algorithm", AtomicU64::new(0)),
    ("wrong_audience", AtomicU64::new(0)),
    ("wrong_issuer", AtomicU64::new(0)),
    ("missing_claim", AtomicU64::new(0)),
    ("missing_sub", AtomicU64::new(0)),
    ("bad_sub", AtomicU64::new(0)),
    ("not_bearer", AtomicU64::new(0)),
    ("malformed", AtomicU64::new(0)),
    ("no_secret", AtomicU64::new(0)),
    ("other", AtomicU64::new(0)),
];

impl UserFailures {
    /// Counts one failure, and says so in the log at most every 30 s: a wrong secret must not
    /// fail silently, nor flood the log (the token itself is never logged).
    pub(crate) fn record(reason: &'static str) {
        let slot = FAILURES.iter().find(|(r, _)| *r == reason).unwrap_or(&FAILURES[10]);
        slot.1.fetch_add(1, Ordering::Relaxed);
        static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = LAST_WARNING.load(Ordering::Relaxed);
        if now >= last + 30 && LAST_WARNING.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let counts: Vec<String> = Self::snapshot().iter().map(|(r, n)| format!("{r} {n}")).collect();
            tracing::warn!(
                reason,
                totals = %counts.join(", "),
                "a credential was rejected; its requests are recorded as anonymous. Check the JWT secret or key, \
                 audience and issuer the server is configured with (counts since start; at most one such warning every 30 s)"
            );
        }
    }

    /// How many credentials failed for `reason` (`expired`, `bad_signature`, …).
    pub fn count(reason: &str) -> u64 {
        FAILURES.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| n.load(Ordering::Relaxed))
    }

    /// All non-zero counts.
    pub fn snapshot() -> Vec<(&'static str, u64)> {
        FAILURES.iter().map(|(r, n)| (*r, n.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_headers(pairs: &[(&str, &str)]) -> Extensions {
        let mut request = http::Request::builder();
        for (k, v) in pairs {
            request = request.header(*k, *v);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let mut extensions = Extensions::new();
        extensions.insert(parts);
        extensions
    }

    fn sign(claims: serde_json::Value) -> String {
        hs256_token(b"k", &claims)
    }

    fn in_an_hour() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3600
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let resolver = JwtUser::hs256(b"k");
        let bearer = |claims| with_headers(&[("authorization", &format!("Bearer {}", sign(claims)))]);
        let now = in_an_hour() - 3600;
        let later = bearer(json!({"sub": "u", "exp": now + 7200, "nbf": now + 3600}));
        assert_eq!(resolver.resolve(&later), Resolution::Invalid("not_yet_valid"));
        let within_leeway = bearer(json!({"sub": "u", "exp": now + 7200, "nbf": now + 10}));
        assert!(matches!(resolver.resolve(&within_leeway), Resolution::User(_)));
    }

    #[test]
    fn supabase_style_claims() {
        let token = sign(json!({
            "sub": "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a01", "email": "ada@example.com", "exp": in_an_hour(),
            "user_metadata": {"full_name": "Ada Lovelace"}, "app_metadata": {"team": "Research"}
        }));
        let resolver = JwtUser::hs256(b"k").department_claim("team");
        let Resolution::User(user) = resolver.resolve(&with_headers(&[("authorization", &format!("Bearer {token}"))]))
        else {
            panic!()
        };
        assert_eq!(user.full_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(user.department.as_deref(), Some("Research"));
        assert_eq!(user.email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn a_required_audience_or_issuer_must_be_in_the_token() {
        let exp = in_an_hour();
        let resolver = JwtUser::hs256(b"k").audience("archon").issuer("https://auth.example.com");
        let iss = "https://auth.example.com";
        let good = sign(json!({"sub": "u", "exp": exp, "aud": "archon", "iss": iss}));
        assert!(matches!(resolver.verify(&good), Resolution::User(_)));
        let among = sign(json!({"sub": "u", "exp": exp, "aud": ["other", "archon"], "iss": iss}));
        assert!(matches!(resolver.verify(&among), Resolution::User(_)));
        for (claims, reason) in [
            (json!({"sub": "u", "exp": exp, "iss": iss}), "missing_claim"),
            (json!({"sub": "u", "exp": exp, "aud": "other", "iss": iss}), "wrong_audience"),
            (json!({"sub": "u", "exp": exp, "aud": 7, "iss": iss}), "missing_claim"),
            (json!({"sub": "u", "exp": exp, "aud": "archon"}), "missing_claim"),
            (json!({"sub": "u", "exp": exp, "aud": "archon", "iss": "https://evil.example.com"}), "wrong_issuer"),
            (json!({"sub": "u", "exp": exp, "aud": "archon", "iss": 5}), "missing_claim"),
        ] {
            assert_eq!(resolver.verify(&sign(claims.clone())), Resolution::Invalid(reason), "{claims}");
        }
        // Without a configured audience, any (or no) `aud` is accepted.
        let supabase = sign(json!({"sub": "u", "exp": exp, "aud": "authenticated"}));
        assert!(matches!(JwtUser::hs256(b"k").verify(&supabase), Resolution::User(_)));
    }

    #[test]
    fn bad_credentials_are_invalid_not_absent() {
        let resolver = JwtUser::hs256(b"k");
        let no_sub = sign(json!({"exp": in_an_hour()}));
        assert_eq!(resolver.verify(&no_sub), Resolution::Invalid("missing_sub"));
        for sub in ["bob\u{0}@corp", "bob\u{1b}[2J"] {
            let control = sign(json!({"sub": sub, "exp": 4_102_444_800u64}));
            assert_eq!(resolver.verify(&control), Resolution::Invalid("bad_sub"), "{sub:?}");
        }
        assert_eq!(resolver.verify("x.y.z"), Resolution::Invalid("malformed"));
        let basic = with_headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(resolver.resolve(&basic), Resolution::Invalid("not_bearer"));
        assert_eq!(resolver.resolve(&Extensions::new()), Resolution::Absent);
        // An invalid token stops the chain: no fallback to a weaker source.
        let chain = JwtUser::hs256(b"k").or(EnvUser::fixed(UserInfo::new("fallback")));
        assert_eq!(chain.resolve(&basic), Resolution::Invalid("not_bearer"));
        assert_eq!(chain.resolve(&Extensions::new()), Resolution::User(UserInfo::new("fallback").into()));
    }

    #[test]
    fn trusted_headers_and_extensions() {
        let ext = with_headers(&[("x-forwarded-user", "u1"), ("x-forwarded-email", "u1@example.com")]);
        let Resolution::User(user) = TrustedHeaders::new().resolve(&ext) else { panic!() };
        assert_eq!((user.id.as_str(), user.email.as_deref()), ("u1", Some("u1@example.com")));
        assert_eq!(TrustedHeaders::new().resolve(&with_headers(&[])), Resolution::Absent);

        let mut request = http::Request::new(());
        request.extensions_mut().insert(UserContext(UserInfo::new("from-auth-layer")));
        let (parts, ()) = request.into_parts();
        let mut ext = Extensions::new();
        ext.insert(parts);
        assert_eq!(ExtensionUser.resolve(&ext), Resolution::User(UserInfo::new("from-auth-layer").into()));
    }

    /// Random and mutated tokens and headers: never a panic, never a user from a bad token.
    #[test]
    fn mangled_credentials_never_panic_or_pass() {
        let resolver = JwtUser::hs256(b"k");
        let valid = sign(json!({"sub": "u", "exp": in_an_hour()}));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let mut token = valid.clone().into_bytes();
            for _ in 0..1 + next() % 4 {
                let i = (next() % token.len() as u64) as usize;
                token[i] = [b'A', b'.', b'-', b'_', b'=', b'z', b'0'][(next() % 7) as usize];
            }
            let token = String::from_utf8(token).unwrap();
            let resolution = resolver.verify(&token);
            if token != valid {
                assert!(!matches!(resolution, Resolution::User(_)), "a mangled token passed: {token}");
            }
            let header = format!("Bearer {token}");
            let _ = resolver.resolve(&with_headers(&[("authorization", &header)]));
        }
    }
}
