//! Which addresses a request may reach. Webhook deliveries go to URLs an admin typed, so
//! without a rule they could be pointed at the network keygate runs in (its database, a cloud
//! metadata service, an admin port). [`Resolver`] drops every address that is not public
//! after the name is resolved, so a name that resolves to a private address is refused too.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};

/// Whether `ip` is on the public internet: not loopback, private, link-local, shared (CGNAT),
/// unique-local, multicast, documentation, benchmarking or unspecified — IPv4-mapped and
/// NAT64 IPv6 addresses judged by the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

/// The IPv4 address an IPv6 address carries, for the forms that reach IPv4: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(ip.is_loopback() || ip.is_unspecified()) {
        return Some(v4(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        || (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8))
}

/// Whether `ip` is where cloud metadata services answer: IPv4 link-local (169.254.0.0/16, also
/// inside IPv6 forms), IPv6 link-local, and AWS's IPv6 metadata address `fd00:ec2::254`.
/// Refused everywhere, `webhooks_allow_private` or not.
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            embedded_v4(v6).is_some_and(|v4| v4.is_link_local())
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// The system resolver, keeping only public addresses unless told to keep all.
#[derive(Clone)]
pub struct Resolver {
    system: GaiResolver,
    public_only: bool,
}

impl Resolver {
    pub fn new(public_only: bool) -> Self {
        Self {
            system: GaiResolver::new(),
            public_only,
        }
    }
}

/// No public address left.
#[derive(Debug, thiserror::Error)]
#[error("the name resolves to no public address")]
pub struct NoPublicAddress;

type Resolved = std::vec::IntoIter<SocketAddr>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for Resolver {
    type Response = Resolved;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Resolved, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.system.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.system.call(name);
        let public_only = self.public_only;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = lookup
                .await?
                .filter(|addr| !is_metadata(addr.ip()))
                .filter(|addr| !public_only || is_public(addr.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(NoPublicAddress.into());
            }
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "::a00:1",
            "2002:a00:1::1",
            "64:ff9b:1::1",
            "fec0::1",
        ] {
            assert!(!is_public(text.parse().unwrap()), "{text}");
        }
        for text in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(text.parse().unwrap()), "{text}");
        }
    }

    #[test]
    fn metadata_addresses_are_found_in_every_form() {
        for text in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "::a9fe:a9fe",
            "fe80::1",
            "fd00:ec2::254",
        ] {
            assert!(is_metadata(text.parse().unwrap()), "{text}");
        }
        for text in ["10.0.0.1", "127.0.0.1", "fd00:ec2::253"] {
            assert!(!is_metadata(text.parse().unwrap()), "{text}");
        }
    }

    #[tokio::test]
    async fn the_resolver_drops_private_answers() {
        use tower_service::Service as _;
        let name: Name = "localhost".parse().unwrap();
        let mut strict = Resolver::new(true);
        std::future::poll_fn(|cx| strict.poll_ready(cx))
            .await
            .unwrap();
        assert!(strict.call(name.clone()).await.is_err());
        let mut open = Resolver::new(false);
        std::future::poll_fn(|cx| open.poll_ready(cx))
            .await
            .unwrap();
        assert!(open.call(name).await.unwrap().next().is_some());
    }
}
