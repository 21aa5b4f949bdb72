//! Countries of client addresses, from a GeoLite2-format database (`maxminddb`) the operator
//! provides: read once at start, looked up in memory as usage records are written, off the
//! request path.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::PathElement;

/// A GeoIP database that names countries (GeoLite2-Country or -City, or one alike).
pub struct GeoIp(maxminddb::Reader<Vec<u8>>);

/// A database that cannot be read. Names the problem, not the data.
#[derive(Debug, thiserror::Error)]
#[error("the GeoIP database cannot be read: {0}")]
pub struct GeoIpError(String);

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoIp({})", self.0.metadata().database_type)
    }
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let reader =
            maxminddb::Reader::open_readfile(path).map_err(|err| GeoIpError(err.to_string()))?;
        Ok(Self(reader))
    }

    /// The country (ISO 3166-1 alpha-2) the database places `ip` in, if any.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        self.0
            .lookup(ip)
            .ok()?
            .decode_path::<String>(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .ok()
            .flatten()
    }
}
