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

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // 64:ff9b::/96 carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] == 0x2001 && segments[1] == 0x0db8))
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
