//! The client's address as `X-Forwarded-For` and the trusted proxies give it. Nothing may
//! panic; from an untrusted peer the client is the peer, whatever the header says; otherwise
//! the client is the peer or an address written in the header.
//!
//! Input: lines. The first is the peer's address; the second the trusted proxies, separated by
//! commas as in `KEYGATE_TRUSTED_PROXIES` (entries that are not addresses or blocks are left
//! out); each further line one `X-Forwarded-For` header (lines that cannot be a header value
//! are left out). A final newline ends the last line and starts no header.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use keygate_core::record::parse_ip_allow;
use keygate_server::http::client_ip::resolve;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let mut lines = data.split(|&c| c == b'\n');
    let (Some(peer), Some(proxies)) = (lines.next(), lines.next()) else {
        return;
    };
    let Some(peer) = std::str::from_utf8(peer)
        .ok()
        .and_then(|text| text.trim().parse::<IpAddr>().ok())
    else {
        return;
    };
    let proxies: Vec<IpNet> = std::str::from_utf8(proxies)
        .unwrap_or_default()
        .split(',')
        .filter_map(|item| parse_ip_allow(&[item.trim().to_owned()]).ok())
        .flatten()
        .collect();
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", value);
        }
    }

    let client = resolve(peer, &headers, &proxies);
    let peer = unmapped(peer);
    if !proxies.iter().any(|net| net.contains(&peer)) {
        assert_eq!(client, peer, "an untrusted peer chose its address");
    }
    let mut written = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(address);
    assert!(
        client == peer || written.any(|ip| ip == client),
        "{client} is neither the peer nor in the header"
    );
});

/// An address as a proxy may write it: bare, with a port, or bracketed.
fn address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = text
        .parse()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(unmapped(ip))
}

/// The client is reported as IPv4 when it came as IPv4-mapped IPv6.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}
