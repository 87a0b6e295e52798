//! Where outbound requests (webhooks today; provider connectors and signed callbacks
//! next) may go: http(s) URLs whose addresses are public. Loopback, private,
//! link-local (cloud metadata), CGNAT, multicast and unspecified addresses are refused
//! unless `SCIMGATE_WEBHOOK_ALLOW_PRIVATE` is set; cloud metadata services are refused
//! even then (some, like Azure's wire server, sit on public addresses). Checked when an
//! endpoint is saved and again at every delivery, inside the HTTP client's resolver, so
//! a name that re-points to a private address later (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

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
    #[error("webhook address {0} is a cloud metadata service; webhooks never go there")]
    Metadata(IpAddr),
}

/// Cloud metadata and host-agent services: instance credentials live behind them, and
/// no webhook receiver does. Refused whatever `SCIMGATE_WEBHOOK_ALLOW_PRIVATE` says.
const METADATA_V4: [Ipv4Addr; 7] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack…
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task credentials
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS Pod Identity
    Ipv4Addr::new(168, 63, 129, 16),   // Azure wire server (a public address)
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (legacy)
    Ipv4Addr::new(169, 254, 0, 23),    // Tencent Cloud
];
const METADATA_V6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), // AWS IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),  // AWS EKS Pod Identity over IPv6
    Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),  // GCP metadata over IPv6
];

/// True for a cloud metadata address, also when written as IPv4-mapped or NAT64 IPv6.
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => METADATA_V4.contains(&v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = v6.to_ipv4_mapped().or_else(|| {
                // NAT64 64:ff9b::/96 carries the IPv4 address in its last 32 bits.
                (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
                    let [.., a, b, c, d] = v6.octets();
                    Ipv4Addr::new(a, b, c, d)
                })
            });
            METADATA_V6.contains(&v6) || embedded.is_some_and(|v4| METADATA_V4.contains(&v4))
        }
    }
}

/// Why `ip` may not receive webhooks, if it may not.
fn refusal(ip: IpAddr, allow_private: bool) -> Option<Refused> {
    if is_metadata(ip) {
        Some(Refused::Metadata(ip))
    } else if !allow_private && is_private(ip) {
        Some(Refused::Private(ip))
    } else {
        None
    }
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
    if let Some(refused) = literal_ip(&url).and_then(|ip| refusal(ip, allow_private)) {
        return Err(refused);
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
    // With private addresses allowed (development), names are not looked up here; a
    // name of a metadata service is still refused by the delivery resolver.
    if allow_private || literal_ip(url).is_some() {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Err(Refused::NotHttp);
    };
    let port = url.port_or_known_default().unwrap_or(443);
    if let Ok(addrs) = (host, port).to_socket_addrs() {
        for a in addrs {
            if let Some(refused) = refusal(a.ip(), allow_private) {
                return Err(refused);
            }
        }
    }
    Ok(())
}

/// The outbound client's resolver: the system's, minus refused addresses.
pub(super) struct GuardedResolver {
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
                .filter(|a| refusal(a.ip(), allow_private).is_none())
                .collect();
            if allowed.is_empty() {
                let reason: Box<dyn std::error::Error + Send + Sync> =
                    match found.first().and_then(|a| refusal(a.ip(), allow_private)) {
                        Some(refused) => Box::new(refused),
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

    #[test]
    fn cloud_metadata_is_refused_even_when_private_is_allowed() {
        for ip in [
            "168.63.129.16",
            "100.100.100.200",
            "169.254.169.254",
            "169.254.170.2",
            "192.0.0.192",
            "fd00:ec2::254",
            "fd20:ce::254",
            "::ffff:168.63.129.16",
            "64:ff9b::a83f:8110",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(is_metadata(addr), "{ip}");
            for allow_private in [false, true] {
                assert_eq!(
                    refusal(addr, allow_private),
                    Some(Refused::Metadata(addr)),
                    "{ip}"
                );
                let url = if addr.is_ipv6() {
                    format!("http://[{ip}]/hook")
                } else {
                    format!("http://{ip}/hook")
                };
                assert!(
                    matches!(check_url(&url, allow_private), Err(Refused::Metadata(_))),
                    "{url}"
                );
            }
        }
        // Covered by the private ranges already: refused by default either way.
        for ip in ["100.100.100.200", "fd00:ec2::254", "169.254.169.254"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        // Its neighbours are ordinary addresses.
        for ip in ["168.63.129.17", "8.8.8.8", "fd00:ec2::253", "10.0.0.1"] {
            assert!(!is_metadata(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(refusal("168.63.129.17".parse().unwrap(), false), None);
        assert_eq!(refusal("10.0.0.1".parse().unwrap(), true), None);
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
