//! Which addresses webhooks may reach. A URL given by a client must not
//! turn the server into a proxy to its own network: private, loopback,
//! link-local and other non-public addresses are refused unless the
//! operator allows them. The check is made on the addresses the sender
//! actually connects to (the resolver below filters them), so a name that
//! resolves differently later (DNS rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// How long a submission may wait for its webhook host to resolve.
const RESOLVE_TIME: std::time::Duration = std::time::Duration::from_secs(3);

/// An address range `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address range such as 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0–{max}"))?
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    let public = !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first == 0x2001 && second == 0xdb8) // documentation
        || (first == 0x0064 && !is_nat64_well_known(ip)) // local NAT64, discard
        || first == 0x0100);
    public && embedded_v4(ip).iter().all(|v4| is_public_v4(*v4))
}

fn is_nat64_well_known(ip: Ipv6Addr) -> bool {
    ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
}

/// The IPv4 addresses an IPv6 address carries and that a packet to it may
/// reach: a private IPv4 address wrapped in a tunnelling or translation
/// form is as private as itself.
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // 6to4 (2002:V4ADDR::/48).
        [0x2002, hi, lo, ..] => vec![v4(hi, lo)],
        // Teredo (2001:0::/32): the server, and the client with its bits inverted.
        [0x2001, 0, shi, slo, _, _, chi, clo] => vec![v4(shi, slo), v4(!chi, !clo)],
        // NAT64's well-known prefix and the deprecated IPv4-compatible form.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => vec![v4(hi, lo)],
        _ => vec![],
    }
}

/// The operator's rule for outbound webhook addresses.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Any address at all (tests, trusted networks).
    pub allow_private: bool,
    /// Non-public ranges allowed anyway.
    pub allow: Vec<Cidr>,
}

impl Guard {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let public = match ip {
            IpAddr::V4(v4) => is_public_v4(v4),
            IpAddr::V6(v6) => is_public_v6(v6),
        };
        public || self.allow_private || self.allow.iter().any(|c| c.contains(ip))
    }

    /// Checks a URL a client gives: http(s), a host, and addresses allowed.
    pub async fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("the scheme must be http or https".into());
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| "the URL has no host".to_string())?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let lookup = tokio::net::lookup_host((host.as_str(), port));
                tokio::time::timeout(RESOLVE_TIME, lookup)
                    .await
                    .map_err(|_| {
                        format!("its host {host:?} did not resolve within {RESOLVE_TIME:?}")
                    })?
                    .map_err(|e| format!("its host {host:?} does not resolve: {e}"))?
                    .map(|a| a.ip())
                    .collect()
            }
        };
        match addrs.iter().find(|ip| !self.allows(**ip)) {
            Some(ip) => Err(format!(
                "it points to {ip}, a private, loopback or otherwise non-public address; \
                 the server refuses those unless started with --webhook-allow-private or \
                 --webhook-allow-cidr"
            )),
            None if addrs.is_empty() => Err(format!("its host {host:?} has no address")),
            None => Ok(parsed),
        }
    }
}

/// A resolver that drops addresses the guard refuses, so the HTTP client
/// never connects to them.
pub struct GuardedResolver(pub Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                all.into_iter().filter(|a| guard.allows(a.ip())).collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to addresses webhooks may not reach").into();
                return Err(refused);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let strict = Guard::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            // Private IPv4 wrapped in 6to4, Teredo, NAT64 and IPv4-compatible forms.
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:0:a9fe:a9fe::1",
            "2001:0:808:808:0:0:80ff:fffe", // client 127.0.0.1
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "::127.0.0.1",
            "::10.0.0.1",
        ] {
            assert!(!strict.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2002:808:808::1",
            "64:ff9b::8.8.8.8",
            "2001:0:808:808::f7f7:f7f7", // server and client 8.8.8.8
        ] {
            assert!(strict.allows(ip.parse().unwrap()), "{ip}");
        }
        let cidr = Guard {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            ..Guard::default()
        };
        assert!(cidr.allows("10.9.9.9".parse().unwrap()));
        assert!(!cidr.allows("192.168.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_before_a_job_is_accepted() {
        let strict = Guard::default();
        assert!(strict.check_url("ftp://example.com/x").await.is_err());
        assert!(strict.check_url("not a url").await.is_err());
        let err = strict
            .check_url("http://127.0.0.1:9/hook")
            .await
            .unwrap_err();
        assert!(err.contains("127.0.0.1"), "{err}");
        assert!(strict.check_url("http://[::1]/hook").await.is_err());
        assert!(strict.check_url("http://localhost/hook").await.is_err());
        let open = Guard {
            allow_private: true,
            ..Guard::default()
        };
        assert!(open.check_url("http://127.0.0.1:9/hook").await.is_ok());
    }
}
