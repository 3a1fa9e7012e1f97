//! The web configuration (--web.config.file: TLS, basic auth users, headers), swapped
//! whole on reload, and the one credential check every endpoint uses ([`auth`]).
//!
//! A leaf beside `http` and `api`: both read it, and it imports neither.

pub mod auth;
pub mod config;
pub mod lines;

pub use config::{BasicAuth, WebConfig, WebConfigError};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

/// The address a request came from, put into its extensions by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A client as the limits count it: an IPv4 address, or an IPv6 /64. One host on
/// IPv6 usually holds a whole /64 (SLAAC, privacy addresses), so counting full IPv6
/// addresses would give it 2^64 fresh budgets. An IPv4 address mapped into IPv6
/// (`::ffff:a.b.c.d`, what a dual-stack socket reports) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6Net(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Net(net) => {
                write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(*net) << 64))
            }
        }
    }
}

/// Where a browser says a request comes from, when that is not this origin: the
/// `Origin` (or `Sec-Fetch-Site`) it sent, shortened for a message. None for a
/// request of this origin, and for clients that are not browsers (they send
/// neither header).
pub fn cross_origin(headers: &axum::http::HeaderMap) -> Option<String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = get("host").unwrap_or_default();
    if let Some(origin) = get("origin") {
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host));
        if !same {
            return Some(format!(
                "origin {}",
                origin.chars().take(100).collect::<String>()
            ));
        }
    }
    match get("sec-fetch-site") {
        None | Some("same-origin") | Some("none") => None,
        Some(site) => Some(format!(
            "fetch site {}",
            site.chars().take(40).collect::<String>()
        )),
    }
}

/// The current web configuration, swapped whole on reload.
#[derive(Debug, Default)]
pub struct Web {
    current: RwLock<Arc<WebConfig>>,
}

impl Web {
    pub fn new(config: WebConfig) -> Self {
        Self {
            current: RwLock::new(Arc::new(config)),
        }
    }

    pub fn get(&self) -> Arc<WebConfig> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, config: WebConfig) {
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_ipv4_addresses_and_ipv6_64s() {
        let key = |text: &str| ClientKey::from(text.parse::<IpAddr>().unwrap());
        assert_eq!(key("127.0.0.2"), ClientKey::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(key("::ffff:127.0.0.2"), key("127.0.0.2"), "mapped");
        assert_ne!(key("127.0.0.1"), key("127.0.0.2"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff::9"),
            "one /64"
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("127.0.0.2").to_string(), "127.0.0.2");
    }

    #[test]
    fn cross_origin_requests_are_told_apart() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = axum::http::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        let host = ("host", "127.0.0.1:9767");
        assert_eq!(cross_origin(&headers(&[host])), None, "not a browser");
        assert_eq!(
            cross_origin(&headers(&[host, ("origin", "http://127.0.0.1:9767")])),
            None
        );
        assert_eq!(
            cross_origin(&headers(&[host, ("sec-fetch-site", "none")])),
            None,
            "typed into the address bar"
        );
        for foreign in [
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "http://127.0.0.1:9767.evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![("origin", "http://127.0.0.1:9767")],
        ] {
            assert!(cross_origin(&headers(&foreign)).is_some(), "{foreign:?}");
        }
    }
}
