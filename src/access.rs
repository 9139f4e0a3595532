//! Who may call the API: named tokens, each with a role, read once at
//! start-up from the single-token setting, a list, or a file of
//! `name:role:token` lines. The HTTP layer asks [`Tokens::find`] which
//! token a request carries; logs name the token, never its secret.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted: 16 characters of any of the usual generators
/// (`openssl rand -base64 24` gives 32) are far beyond guessing.
pub const MIN_TOKEN_LEN: usize = 16;
/// The name the single `--api-token` is known by in logs.
pub const SINGLE_TOKEN_NAME: &str = "default";

/// What a token may do. `Write` includes everything `Read` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Lists, a job or recording, media, logs, events, metrics, the
    /// dashboard and the API document: every `GET`.
    Read,
    /// Also start, stop, cleanup, reprocess and delete.
    Write,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One token: its name (for logs), its role, and the digest of its secret
/// (the secret itself is not kept).
#[derive(Clone)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    digest: [u8; 32],
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Every configured token. Empty: the API is open.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<ApiToken>);

/// Where the tokens come from (flags or their variables).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenSources<'a> {
    /// `--api-token`: one token with the `write` role.
    pub single: Option<&'a str>,
    /// `--api-tokens`: `name:role:token` entries.
    pub list: &'a [String],
    /// `--api-tokens-file`: one `name:role:token` per line.
    pub file: Option<&'a Path>,
}

impl Tokens {
    /// Reads and checks every token. An empty value where a token was
    /// expected is an error, never "no token": a variable left empty by a
    /// deployment must not open the API.
    pub fn load(sources: TokenSources<'_>) -> anyhow::Result<Self> {
        let mut tokens = Vec::new();
        if let Some(single) = sources.single {
            if single.trim().is_empty() {
                bail!(
                    "RECORDERD_API_TOKEN (--api-token) is set but empty: set a token \
                     (e.g. `openssl rand -base64 24`), or unset the variable"
                );
            }
            tokens.push(token(SINGLE_TOKEN_NAME, Role::Write, single.trim())?);
        }
        if sources.list.iter().any(|entry| entry.trim().is_empty()) {
            bail!(
                "RECORDERD_API_TOKENS (--api-tokens) holds an empty entry: give `name:role:token` entries"
            );
        }
        for entry in sources.list {
            tokens.push(parse_entry(entry).context("in RECORDERD_API_TOKENS (--api-tokens)")?);
        }
        if let Some(path) = sources.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading API tokens from {}", path.display()))?;
            let before = tokens.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let parsed = parse_entry(line)
                    .with_context(|| format!("{}, line {}", path.display(), n + 1))?;
                tokens.push(parsed);
            }
            if tokens.len() == before {
                bail!(
                    "{} holds no token: give one `name:role:token` line at least",
                    path.display()
                );
            }
        }
        check_unique(&tokens)?;
        Ok(Self(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The token whose secret is `presented`. Every configured token is
    /// compared, each in constant time, so the answer's timing says
    /// neither which token nor how much of one was right.
    pub fn find(&self, presented: &str) -> Option<&ApiToken> {
        let candidate: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.0 {
            if bool::from(candidate.ct_eq(&token.digest)) {
                found = Some(token);
            }
        }
        found
    }
}

/// `name:role:token`; the token is everything after the second colon.
fn parse_entry(entry: &str) -> anyhow::Result<ApiToken> {
    let mut parts = entry.trim().splitn(3, ':');
    let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("expected `name:role:token` (role `read` or `write`)");
    };
    let role = match role.trim() {
        "read" => Role::Read,
        "write" => Role::Write,
        other => bail!("token `{name}`: unknown role `{other}` (roles: read, write)"),
    };
    token(name.trim(), role, secret.trim())
}

fn token(name: &str, role: Role, secret: &str) -> anyhow::Result<ApiToken> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("token name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.`");
    }
    if secret.chars().count() < MIN_TOKEN_LEN {
        bail!("token `{name}` must be at least {MIN_TOKEN_LEN} characters long");
    }
    if secret
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        bail!("token `{name}` must not contain spaces, control characters or commas");
    }
    Ok(ApiToken {
        name: name.to_owned(),
        role,
        digest: Sha256::digest(secret.as_bytes()).into(),
    })
}

fn check_unique(tokens: &[ApiToken]) -> anyhow::Result<()> {
    for (i, token) in tokens.iter().enumerate() {
        for earlier in &tokens[..i] {
            if earlier.name == token.name {
                bail!("two API tokens are named `{}`", token.name);
            }
            if earlier.digest == token.digest {
                bail!(
                    "tokens `{}` and `{}` are the same secret: give each its own",
                    earlier.name,
                    token.name
                );
            }
        }
    }
    Ok(())
}

/// The names a browser may use to reach this server (`Host`), against DNS
/// rebinding: a page of another site whose name has been pointed at this
/// machine would otherwise talk to a loopback-only server as if local.
#[derive(Debug, Clone, Default)]
pub struct PublicNames {
    names: Vec<(String, Option<u16>)>,
    /// Whether requests are checked at all (see [`PublicNames::new`]).
    checked: bool,
}

/// Names that always mean this machine.
const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

impl PublicNames {
    /// `entries` are `name` or `name:port`. The check is on when the
    /// server listens on loopback (what rebinding reaches) or when names
    /// are given.
    pub fn new(entries: &[String], bind_is_loopback: bool) -> anyhow::Result<Self> {
        let mut names = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            names.push(parse_host(entry).with_context(|| {
                format!("--public-names: `{entry}` is not a host name or `name:port`")
            })?);
        }
        Ok(Self {
            checked: bind_is_loopback || !names.is_empty(),
            names,
        })
    }

    /// Whether a request naming `host` (its `Host` header) is for this
    /// server. A request without one (HTTP/1.0, or in-process) is not a
    /// browser's and passes.
    pub fn allows(&self, host: Option<&str>) -> bool {
        if !self.checked {
            return true;
        }
        let Some(host) = host else { return true };
        let Ok((name, port)) = parse_host(host) else {
            return false;
        };
        LOOPBACK_NAMES.contains(&name.as_str())
            || self.names.iter().any(|(allowed, allowed_port)| {
                *allowed == name && allowed_port.is_none_or(|p| Some(p) == port)
            })
    }

    /// The names accepted, for the refusal's message.
    pub fn describe(&self) -> String {
        let mut all: Vec<String> = LOOPBACK_NAMES.iter().map(|n| (*n).to_owned()).collect();
        all.extend(self.names.iter().map(|(name, port)| match port {
            Some(port) => format!("{name}:{port}"),
            None => name.clone(),
        }));
        all.join(", ")
    }
}

/// `name` or `name:port` (IPv6 in brackets), the name lower-cased.
fn parse_host(text: &str) -> anyhow::Result<(String, Option<u16>)> {
    let parsed = url::Url::parse(&format!("http://{text}/"))?;
    let host = parsed.host_str().filter(|h| !h.is_empty());
    match host {
        Some(host)
            if parsed.path() == "/" && parsed.username().is_empty() && parsed.query().is_none() =>
        {
            Ok((host.to_ascii_lowercase(), parsed.port()))
        }
        _ => bail!("not a host"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(single: Option<&str>, list: &[&str]) -> anyhow::Result<Tokens> {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        Tokens::load(TokenSources {
            single,
            list: &list,
            file: None,
        })
    }

    #[test]
    fn tokens_are_found_by_secret_with_their_name_and_role() {
        let tokens = load(
            Some("0123456789abcdef"),
            &[
                "viewer:read:Zm9v+YmFy/YmF6=cXV4cXV4",
                "ops:write:a:b:c-0123456789",
            ],
        )
        .expect("valid tokens");
        assert_eq!(tokens.len(), 3);
        let found = |s: &str| tokens.find(s).map(|t| (t.name.as_str(), t.role));
        assert_eq!(found("0123456789abcdef"), Some(("default", Role::Write)));
        assert_eq!(
            found("Zm9v+YmFy/YmF6=cXV4cXV4"),
            Some(("viewer", Role::Read))
        );
        assert_eq!(found("a:b:c-0123456789"), Some(("ops", Role::Write)));
        assert_eq!(found("0123456789abcdeF"), None);
        assert_eq!(found(""), None);
    }

    #[test]
    fn empty_short_duplicate_or_malformed_tokens_are_refused() {
        for (single, list, says) in [
            (Some(""), &[][..], "empty"),
            (Some("   "), &[], "empty"),
            (Some("short"), &[], "at least 16"),
            (None, &[""], "empty entry"),
            (None, &["viewer:read"], "name:role:token"),
            (None, &["viewer:admin:0123456789abcdef"], "unknown role"),
            (None, &["bad name:read:0123456789abcdef"], "token name"),
            (
                None,
                &["a:read:0123456789abcdef", "a:write:0123456789abcdeX"],
                "two API tokens",
            ),
            (
                None,
                &["a:read:0123456789abcdef", "b:write:0123456789abcdef"],
                "same secret",
            ),
            (None, &["a:read:0123456789 abcdef"], "spaces"),
        ] {
            let err = format!("{:#}", load(single, list).expect_err(says));
            assert!(err.contains(says), "{single:?} {list:?}: {err}");
        }
        assert!(load(None, &[]).expect("no token").is_empty());
    }

    #[test]
    fn hosts_are_checked_against_loopback_and_public_names() {
        let names = PublicNames::new(&["Rec.Example.org".into(), "10.0.0.5:8443".into()], true)
            .expect("valid names");
        for allowed in [
            None,
            Some("localhost:8000"),
            Some("127.0.0.1"),
            Some("[::1]:8000"),
            Some("rec.example.org"),
            Some("REC.example.org:443"),
            Some("10.0.0.5:8443"),
        ] {
            assert!(names.allows(allowed), "{allowed:?}");
        }
        for refused in [
            Some("evil.example"),
            Some("evil.example:8000"),
            Some("10.0.0.5"),
            Some("10.0.0.5:8000"),
            Some("localhost.evil.example"),
            Some(""),
            Some("a b"),
        ] {
            assert!(!names.allows(refused), "{refused:?}");
        }
        let unchecked = PublicNames::new(&[], false).expect("no names");
        assert!(unchecked.allows(Some("anything.example")));
        assert!(PublicNames::new(&["a/b".into()], true).is_err());
    }

    #[test]
    fn a_token_file_takes_one_entry_a_line_with_comments() {
        let dir = std::env::temp_dir().join(format!("recorderd-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("tokens");
        std::fs::write(
            &file,
            "# who may call\n\nviewer:read:0123456789abcdef\n  ops:write:fedcba9876543210  \n",
        )
        .expect("write");
        let tokens = Tokens::load(TokenSources {
            file: Some(&file),
            ..Default::default()
        })
        .expect("valid file");
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens.find("fedcba9876543210").map(|t| t.role),
            Some(Role::Write)
        );

        std::fs::write(&file, "# nothing here\n").expect("write");
        let err = Tokens::load(TokenSources {
            file: Some(&file),
            ..Default::default()
        })
        .expect_err("an empty file");
        assert!(format!("{err:#}").contains("no token"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
