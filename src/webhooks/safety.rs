//! Where webhooks may go: http(s) URLs whose addresses are public. Loopback, private,
//! link-local (cloud metadata), CGNAT, multicast and unspecified addresses are refused
//! unless `SCIMGATE_WEBHOOK_ALLOW_PRIVATE` is set. Checked when an endpoint is saved and
//! again at every delivery, inside the HTTP client's resolver, so a name that re-points
//! to a private address later (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Why a URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("webhook URL must be an absolute http(s) URL")]
    NotHttp,
    #[error("webhook URL must not carry credentials")]
    Credentials,
    #[error("webhook address {0} is loopback, private, link-local or otherwise not public (set SCIMGATE_WEBHOOK_ALLOW_PRIVATE=true to allow it)")]
    Private(IpAddr),
}

/// True for addresses a webhook must not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254)
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6.segments()[..4] == [0, 0, 0, 0] // ::/64: compatible, SIIT ::ffff:0:a.b.c.d
                || first == 0x2002 // 6to4 2002::/16 embeds an IPv4 address
                || (v6.segments()[0] == 0x64 && v6.segments()[1] == 0xff9b) // NAT64
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 88 && ip.octets()[2] == 99) // 6to4 relay anycast
        || a >= 240 // reserved
}

/// Parses and checks a webhook URL's form (scheme, no credentials) and, when its host is
/// an address literal, the address. Names are checked by [`check_resolved`].
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, Refused> {
    let url = Url::parse(raw.trim()).map_err(|_| Refused::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Refused::NotHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    if let Some(ip) = literal_ip(&url) {
        if !allow_private && is_private(ip) {
            return Err(Refused::Private(ip));
        }
    }
    Ok(url)
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Checks the addresses a URL's host name resolves to now (blocking; call off the async
/// executor). A name that does not resolve is accepted here: delivery checks again.
pub fn check_resolved(url: &Url, allow_private: bool) -> Result<(), Refused> {
    if allow_private || literal_ip(url).is_some() {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Err(Refused::NotHttp);
    };
    let port = url.port_or_known_default().unwrap_or(443);
    if let Ok(addrs) = (host, port).to_socket_addrs() {
        for a in addrs {
            if is_private(a.ip()) {
                return Err(Refused::Private(a.ip()));
            }
        }
    }
    Ok(())
}

/// The delivery client's resolver: the system's, minus refused addresses.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if allowed.is_empty() {
                let reason: Box<dyn std::error::Error + Send + Sync> = match found.first() {
                    Some(a) => Box::new(Refused::Private(a.ip())),
                    None => format!("{host} has no address").into(),
                };
                return Err(reason);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "224.0.0.1",
            "::ffff:0:127.0.0.1",
            "2002:7f00:1::1",
            "192.88.99.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn the_delivery_resolver_drops_private_addresses() {
        use reqwest::dns::{Name, Resolve};
        use std::str::FromStr;
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name = Name::from_str("localhost").unwrap();
        let refused = guarded.resolve(name).await;
        assert!(refused.is_err(), "localhost resolves to loopback only");
        let open = GuardedResolver {
            allow_private: true,
        };
        let addrs: Vec<_> = open
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert_eq!(
            check_url("ftp://example.com", false).unwrap_err(),
            Refused::NotHttp
        );
        assert_eq!(check_url("not a url", false).unwrap_err(), Refused::NotHttp);
        assert_eq!(
            check_url("https://u:p@example.com/", false).unwrap_err(),
            Refused::Credentials
        );
        assert!(matches!(
            check_url("http://127.0.0.1:8080/h", false),
            Err(Refused::Private(_))
        ));
        assert!(matches!(
            check_url("http://[::1]/h", false),
            Err(Refused::Private(_))
        ));
        assert!(check_url("http://127.0.0.1:8080/h", true).is_ok());
        let localhost = check_url("http://localhost:9/h", false).unwrap();
        assert!(matches!(
            check_resolved(&localhost, false),
            Err(Refused::Private(_))
        ));
    }
}
