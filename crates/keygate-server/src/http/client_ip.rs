//! The client's address. A request's peer is the client, unless the peer is one of the
//! configured trusted proxies: then `X-Forwarded-For` is read from the right, past every
//! trusted proxy, to the first address that is not one. A client cannot choose its address by
//! sending the header itself: from an untrusted peer the header is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use super::AppState;

/// The resolved client address, for the handlers (see [`super::extract::RequestMeta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Most `X-Forwarded-For` entries read: a longer chain is not a real deployment.
const MAX_HOPS: usize = 32;

/// `::ffff:a.b.c.d` is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`[v6]:port`, `v4:port`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

/// The client of a request from `peer` with `headers`, given the trusted `proxies`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if proxies.is_empty() || !trusted(peer, proxies) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one list; each proxy appends on the right.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        // An entry that is not an address ends the chain: the last proxy that could be
        // trusted is as far as keygate can see.
        let Some(ip) = parse_hop(hop).map(canonical) else {
            return client;
        };
        client = ip;
        if !trusted(ip, proxies) {
            return ip;
        }
    }
    client
}

/// Puts the resolved [`ClientIp`] in the request's extensions.
pub(crate) async fn resolve_client_ip(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = resolve(peer, request.headers(), &state.settings.trusted_proxies);
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use keygate_core::record::parse_ip_allow;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(items: &[&str]) -> Vec<IpNet> {
        items.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let spoofed = headers(&["1.2.3.4"]);
        assert_eq!(
            resolve(ip("198.51.100.9"), &spoofed, &[]),
            ip("198.51.100.9")
        );
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("198.51.100.9"), &spoofed, &proxies),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn the_chain_is_read_from_the_right_past_trusted_proxies() {
        let proxies = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        // The client put a forged entry first; the proxies appended the real ones.
        let chain = headers(&["6.6.6.6, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(resolve(ip("10.9.9.9"), &chain, &proxies), ip("203.0.113.7"));
        let v6 = headers(&["[2001:db9::1]:4711, 2001:db8::5"]);
        assert_eq!(resolve(ip("2001:db8::1"), &v6, &proxies), ip("2001:db9::1"));
        let with_port = headers(&["203.0.113.7:5555"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &with_port, &proxies),
            ip("203.0.113.7")
        );
        // All trusted: the leftmost is as far as the chain goes.
        let all = headers(&["10.0.0.2, 10.0.0.3"]);
        assert_eq!(resolve(ip("10.0.0.4"), &all, &proxies), ip("10.0.0.2"));
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(
            resolve(ip("10.0.0.4"), &HeaderMap::new(), &proxies),
            ip("10.0.0.4")
        );
        // Garbage stops the walk at the last trusted hop.
        let garbage = headers(&["203.0.113.7, not-an-ip, 10.0.0.9"]);
        assert_eq!(resolve(ip("10.0.0.4"), &garbage, &proxies), ip("10.0.0.9"));
    }

    #[test]
    fn fuzz_seeds_keep_the_invariants() {
        // A seed's lines: the peer, the trusted proxies, then one header each.
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/seeds/forwarded_for"
        );
        for entry in std::fs::read_dir(dir).unwrap() {
            let seed = std::fs::read(entry.unwrap().path()).unwrap();
            let mut lines = seed
                .strip_suffix(b"\n")
                .unwrap_or(&seed)
                .split(|&c| c == b'\n');
            let mut text =
                || String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
            let peer = canonical(text().trim().parse().unwrap());
            let proxies: Vec<IpNet> = text()
                .split(',')
                .filter_map(|item| parse_ip_allow(&[item.trim().to_owned()]).ok())
                .flatten()
                .collect();
            let mut headers = HeaderMap::new();
            for value in lines.filter_map(|line| HeaderValue::from_bytes(line).ok()) {
                headers.append("x-forwarded-for", value);
            }
            let client = resolve(peer, &headers, &proxies);
            let mut written = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .filter_map(|hop| parse_hop(hop).map(canonical));
            assert!(client == peer || (trusted(peer, &proxies) && written.any(|ip| ip == client)));
        }
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let proxies = nets(&["127.0.0.1/32"]);
        let chain = headers(&["::ffff:203.0.113.7"]);
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), &chain, &proxies),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn prefix_edges() {
        let proxies = nets(&["192.0.2.0/31", "2001:db8::/127"]);
        assert!(trusted(ip("192.0.2.1"), &proxies));
        assert!(!trusted(ip("192.0.2.2"), &proxies));
        assert!(trusted(ip("2001:db8::1"), &proxies));
        assert!(!trusted(ip("2001:db8::2"), &proxies));
        assert!(trusted(ip("8.8.8.8"), &nets(&["0.0.0.0/0"])));
        assert!(
            !trusted(ip("::1"), &nets(&["0.0.0.0/0"])),
            "v4 rules never match v6"
        );
    }
}
