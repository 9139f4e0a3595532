//! What a source may reach. A recorder opens whatever URL a client gives
//! it, from inside the network recorderd runs in: without rules, a start
//! could make it fetch from an internal service (and the recording would
//! serve the answer back), listen on a port, or probe which ports answer.
//!
//! Three kinds of rule, checked at start time:
//! - options that make a recorder accept connections instead of opening
//!   one (`listen`, `mode=listener`, `localport`, …) are refused in every
//!   source;
//! - the source's host, resolved, against the profile's `deny_hosts`, then
//!   `allow_hosts` (when set, only what it names), then the built-in
//!   refusal of link-local and cloud metadata addresses, then, with
//!   `deny_private`, loopback and private ranges;
//! - the protocols ffmpeg may use, passed as `-protocol_whitelist` by the
//!   built-in profile (`{protocols}`): exactly what its schemes need, so
//!   a playlist cannot pull `file:` segments.
//!
//! The host is resolved here and again by the recorder: a name whose
//! answers change in between, an HTTP redirect or a playlist naming other
//! hosts are not seen by these rules (the README's "Security" says what
//! to do about that).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use url::Url;

/// How long the resolution of a source's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which rule refused a source, named in the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReachRule {
    ListenerOption,
    BuiltinDeny,
    DenyPrivate,
    DenyHosts,
    AllowHosts,
}

impl ReachRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListenerOption => "listener_option",
            Self::BuiltinDeny => "builtin_deny",
            Self::DenyPrivate => "deny_private",
            Self::DenyHosts => "deny_hosts",
            Self::AllowHosts => "allow_hosts",
        }
    }
}

/// A refused source: the rule, and what it refused, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: ReachRule,
    pub reason: String,
}

/// An entry of `allow_hosts` or `deny_hosts`: a network (`10.0.0.0/8`),
/// an address, a host name, or every name under a domain
/// (`*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Network(IpNet),
    Name(String),
    /// `.example.com`: names ending so (not `example.com` itself).
    Suffix(String),
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Self::Network(net.trunc()));
        }
        if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Self::Network(IpNet::from(ip.to_canonical())));
        }
        let (suffix, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let name = normalize_name(name);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!(
                "`{text}` is not a network (10.0.0.0/8), an address, a host name or `*.domain`"
            ));
        }
        Ok(if suffix {
            Self::Suffix(format!(".{name}"))
        } else {
            Self::Name(name)
        })
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(net) => write!(f, "{net}"),
            Self::Name(name) => f.write_str(name),
            Self::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl HostPattern {
    fn matches_name(&self, name: &str) -> bool {
        match self {
            Self::Name(n) => n == name,
            Self::Suffix(suffix) => name.ends_with(suffix.as_str()),
            Self::Network(_) => false,
        }
    }

    fn matches_address(&self, ip: IpAddr) -> bool {
        matches!(self, Self::Network(net) if net.contains(&ip))
    }
}

/// A profile's host rules.
#[derive(Debug, Clone, Copy)]
pub struct HostRules<'a> {
    pub profile: &'a str,
    pub allow: &'a [HostPattern],
    pub deny: &'a [HostPattern],
    pub deny_private: bool,
}

/// Refused for every source unless `allow_hosts` names them: link-local
/// addresses, where clouds serve instance metadata and credentials.
pub const BUILTIN_DENY: &[&str] = &["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"];

/// Refused with `deny_private`: this host (loopback, and the unspecified
/// address, which reaches it too) and the private and shared ranges.
pub const PRIVATE: &[&str] = &[
    "127.0.0.0/8",
    "0.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "::1/128",
    "::/128",
    "fc00::/7",
];

/// Query options of ffmpeg's protocols that make a recorder wait for
/// others to connect, or bind a port of its choosing.
const LISTENER_OPTIONS: &[&str] = &[
    "listen",
    "listen_timeout",
    "localport",
    "localrtpport",
    "localrtcpport",
];

/// The option of `source` that would turn its recorder into a listener,
/// if any: `?listen=1` (tcp, http), `?mode=listener` (srt), `?localport=`
/// (udp, rtp), `?rtsp_flags=listen`.
pub fn listener_option(url: &Url) -> Option<String> {
    url.query_pairs().find_map(|(name, value)| {
        let name = name.to_ascii_lowercase();
        let value = value.to_ascii_lowercase();
        let listens = LISTENER_OPTIONS.contains(&name.as_str())
            || (name == "mode" && matches!(value.as_str(), "listener" | "server" | "rendezvous"))
            || (name == "rtsp_flags" && value.contains("listen"));
        listens.then(|| {
            if value.is_empty() {
                name
            } else {
                format!("{name}={value}")
            }
        })
    })
}

/// Checks the host of `url` against `rules`, resolving it when it is a
/// name. A name that does not resolve passes (the recorder cannot reach
/// it either) unless `allow_hosts` is set: then only names it lists do.
pub async fn check_host(url: &Url, rules: HostRules<'_>) -> Result<(), Refusal> {
    let host = url.host_str().map(normalize_name).unwrap_or_default();
    if let Some(pattern) = rules.deny.iter().find(|p| p.matches_name(&host)) {
        return Err(refusal(
            ReachRule::DenyHosts,
            format!(
                "host `{host}` matches `deny_hosts` entry `{pattern}` of profile `{}`",
                rules.profile
            ),
        ));
    }
    if rules.allow.iter().any(|p| p.matches_name(&host)) {
        return Ok(());
    }
    let addresses = match resolve(&host, url.port_or_known_default().unwrap_or(0)).await {
        Ok(addresses) => addresses,
        Err(why) if rules.allow.is_empty() => {
            tracing::debug!(%host, %why, "source host not resolved; left to the recorder");
            return Ok(());
        }
        Err(why) => {
            return Err(refusal(
                ReachRule::AllowHosts,
                format!(
                    "host `{host}` {why}, and `allow_hosts` of profile `{}` does not name it",
                    rules.profile
                ),
            ));
        }
    };
    for ip in addresses {
        judge_address(&host, ip, rules)?;
    }
    Ok(())
}

/// The rules for one address the host resolved to.
fn judge_address(host: &str, ip: IpAddr, rules: HostRules<'_>) -> Result<(), Refusal> {
    let ip = ip.to_canonical();
    let who = if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() || host.is_empty() {
        format!("`{ip}`")
    } else {
        format!("`{host}` ({ip})")
    };
    let profile = rules.profile;
    if let Some(pattern) = rules.deny.iter().find(|p| p.matches_address(ip)) {
        return Err(refusal(
            ReachRule::DenyHosts,
            format!("{who} matches `deny_hosts` entry `{pattern}` of profile `{profile}`"),
        ));
    }
    if rules.allow.iter().any(|p| p.matches_address(ip)) {
        return Ok(());
    }
    if !rules.allow.is_empty() {
        return Err(refusal(
            ReachRule::AllowHosts,
            format!("{who} matches no `allow_hosts` entry of profile `{profile}`"),
        ));
    }
    if let Some(net) = containing(BUILTIN_DENY, ip) {
        return Err(refusal(
            ReachRule::BuiltinDeny,
            format!(
                "{who} is a link-local or cloud metadata address ({net}); no source may reach \
                 one unless `allow_hosts` of profile `{profile}` names it"
            ),
        ));
    }
    if rules.deny_private
        && let Some(net) = containing(PRIVATE, ip)
    {
        return Err(refusal(
            ReachRule::DenyPrivate,
            format!(
                "{who} is a loopback or private address ({net}), refused by `deny_private` of \
                 profile `{profile}`"
            ),
        ));
    }
    Ok(())
}

fn refusal(rule: ReachRule, reason: String) -> Refusal {
    Refusal { rule, reason }
}

/// The network of `list` that holds `ip`.
fn containing(list: &[&'static str], ip: IpAddr) -> Option<&'static str> {
    list.iter()
        .copied()
        .find(|net| net.parse::<IpNet>().is_ok_and(|net| net.contains(&ip)))
}

/// Lower case, without the trailing dot of a fully qualified name.
fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The addresses `host` stands for: itself when it is one, what the system
/// resolver answers otherwise (as the recorder's own lookup will, so
/// `127.1` or `2130706433` are seen as the loopback address they are). No
/// host at all (`udp://@:1234`) means every local address.
async fn resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    let bare = host.trim_matches(['[', ']']);
    if bare.is_empty() {
        return Ok(vec![IpAddr::from([0, 0, 0, 0])]);
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
        Ok(Ok(found)) => {
            let addresses: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            if addresses.is_empty() {
                Err("resolves to no address".to_owned())
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(e)) => Err(format!("does not resolve ({e})")),
        Err(_) => Err(format!(
            "did not resolve within {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

/// What ffmpeg's `-protocol_whitelist` must hold for sources of `schemes`:
/// each scheme and the protocols it runs over (https over tls over tcp, an
/// RTSP session's RTP over UDP, …), comma-separated, sorted. `file` is
/// there only if a scheme names it.
pub fn protocol_whitelist(schemes: &[String]) -> String {
    let mut protocols: Vec<&str> = Vec::new();
    for scheme in schemes {
        let scheme = scheme.as_str();
        let under: &[&str] = match scheme {
            "http" => &["tcp", "crypto"],
            "https" => &["tls", "tcp", "crypto"],
            "rtmp" | "rtmpe" => &["tcp"],
            "rtmps" | "rtmpts" => &["tls", "tcp"],
            "rtmpt" | "rtmpte" => &["http", "tcp"],
            "rtsp" => &["rtp", "udp", "tcp"],
            "rtsps" => &["rtp", "srtp", "udp", "tcp", "tls"],
            "rtp" => &["udp"],
            "tls" => &["tcp"],
            "hls" => &["http", "https", "tls", "tcp", "crypto"],
            _ => &[],
        };
        protocols.push(scheme);
        protocols.extend_from_slice(under);
    }
    protocols.sort_unstable();
    protocols.dedup();
    protocols.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<HostPattern> {
        list.iter()
            .map(|p| p.parse().expect("a valid pattern"))
            .collect()
    }

    async fn check(
        source: &str,
        allow: &[&str],
        deny: &[&str],
        deny_private: bool,
    ) -> Result<(), ReachRule> {
        let (allow, deny) = (patterns(allow), patterns(deny));
        let url = Url::parse(source).expect("a URL");
        check_host(
            &url,
            HostRules {
                profile: "p",
                allow: &allow,
                deny: &deny,
                deny_private,
            },
        )
        .await
        .map_err(|r| r.rule)
    }

    #[tokio::test]
    async fn each_rule_refuses_what_it_names_and_nothing_else() {
        use ReachRule::*;
        for (source, allow, deny, private, expected) in [
            (
                "http://169.254.169.254/latest/meta-data",
                &[][..],
                &[][..],
                false,
                Err(BuiltinDeny),
            ),
            ("rtsp://[fe80::1]/cam", &[], &[], false, Err(BuiltinDeny)),
            ("http://[fd00:ec2::254]/", &[], &[], false, Err(BuiltinDeny)),
            (
                "http://[::ffff:169.254.169.254]/",
                &[],
                &[],
                false,
                Err(BuiltinDeny),
            ),
            ("http://127.0.0.1:8080/stream", &[], &[], false, Ok(())),
            ("rtsp://192.168.1.20/cam", &[], &[], false, Ok(())),
            (
                "http://127.0.0.1:8080/stream",
                &[],
                &[],
                true,
                Err(DenyPrivate),
            ),
            ("rtmp://127.1/app/key", &[], &[], true, Err(DenyPrivate)),
            (
                "rtmp://2130706433/app/key",
                &[],
                &[],
                true,
                Err(DenyPrivate),
            ),
            ("http://localhost/", &[], &[], true, Err(DenyPrivate)),
            ("udp://0.0.0.0:1234", &[], &[], true, Err(DenyPrivate)),
            ("srt://[::1]:9000", &[], &[], true, Err(DenyPrivate)),
            (
                "rtsp://10.1.2.3/cam",
                &[],
                &["10.1.0.0/16"],
                false,
                Err(DenyHosts),
            ),
            (
                "rtsp://camera.lan/x",
                &[],
                &["camera.lan"],
                false,
                Err(DenyHosts),
            ),
            (
                "rtsp://a.cams.lan/x",
                &[],
                &["*.cams.lan"],
                false,
                Err(DenyHosts),
            ),
            ("rtsp://10.1.2.3/cam", &["10.1.0.0/16"], &[], true, Ok(())),
            (
                "rtsp://10.2.0.1/cam",
                &["10.1.0.0/16"],
                &[],
                false,
                Err(AllowHosts),
            ),
            (
                "http://169.254.169.254/",
                &["169.254.169.254"],
                &[],
                false,
                Ok(()),
            ),
            ("rtsp://camera.lan/x", &["camera.lan"], &[], true, Ok(())),
            (
                "rtsp://nowhere.invalid/x",
                &["camera.lan"],
                &[],
                false,
                Err(AllowHosts),
            ),
            ("rtsp://nowhere.invalid/x", &[], &[], true, Ok(())),
            (
                "rtsp://10.1.2.3/cam",
                &["10.0.0.0/8"],
                &["10.1.2.3"],
                false,
                Err(DenyHosts),
            ),
        ] {
            assert_eq!(
                check(source, allow, deny, private).await,
                expected,
                "{source} allow {allow:?} deny {deny:?} private {private}"
            );
        }
    }

    #[test]
    fn listener_options_are_found_in_any_case() {
        for (source, found) in [
            ("tcp://0.0.0.0:18997?listen=1", Some("listen=1")),
            ("tcp://host:1?LISTEN", Some("listen")),
            ("srt://host:9000?mode=listener", Some("mode=listener")),
            ("srt://host:9000?mode=rendezvous", Some("mode=rendezvous")),
            (
                "udp://239.0.0.1:1234?localport=5000",
                Some("localport=5000"),
            ),
            ("rtsp://cam/x?rtsp_flags=listen", Some("rtsp_flags=listen")),
            ("srt://host:9000?mode=caller&latency=200", None),
            ("http://host/x?listening=yes", None),
        ] {
            let url = Url::parse(source).expect("a URL");
            assert_eq!(listener_option(&url).as_deref(), found, "{source}");
        }
    }

    #[test]
    fn patterns_parse_networks_addresses_names_and_domains() {
        assert_eq!(patterns(&["10.1.2.3/8"])[0].to_string(), "10.0.0.0/8");
        assert_eq!(patterns(&["[::1]"])[0].to_string(), "::1/128");
        assert_eq!(
            patterns(&["Camera.LAN."])[0],
            HostPattern::Name("camera.lan".into())
        );
        assert_eq!(patterns(&["*.example.com"])[0].to_string(), "*.example.com");
        for bad in ["", "a b", "http://x", "*."] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_whitelist_holds_each_scheme_and_what_it_runs_over() {
        let schemes = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(protocol_whitelist(&schemes(&["udp"])), "udp");
        assert_eq!(
            protocol_whitelist(&schemes(&["https", "rtmp"])),
            "crypto,https,rtmp,tcp,tls"
        );
        let builtin = protocol_whitelist(&super::super::Profile::ffmpeg().allowed_schemes);
        assert!(!builtin.split(',').any(|p| p == "file"), "{builtin}");
    }
}
