//! Zeroconf: the Wyoming listener announced as `_wyoming._tcp.local.`, the
//! way Home Assistant discovers Wyoming services (no TXT records; it asks
//! the service itself with `describe`).
//!
//! A listener bound to every interface (`0.0.0.0`) is announced with the
//! host's own addresses, never the unspecified one, which nobody can
//! reach. The announcement lasts as long as the [`Announcement`].

use std::net::SocketAddr;

use mdns_sd::{ServiceDaemon, ServiceInfo};

const SERVICE_TYPE: &str = "_wyoming._tcp.local.";

pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// Announces the listener at `addr` as instance `name`.
pub fn announce(name: &str, addr: SocketAddr) -> Result<Announcement, String> {
    let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
    let host = hostname();
    let ip = if addr.ip().is_unspecified() {
        String::new()
    } else {
        addr.ip().to_string()
    };
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        name,
        &format!("{host}.local."),
        ip.as_str(),
        addr.port(),
        None::<std::collections::HashMap<String, String>>,
    )
    .map_err(|e| e.to_string())?;
    let info = if addr.ip().is_unspecified() {
        info.enable_addr_auto()
    } else {
        info
    };
    let fullname = info.get_fullname().to_string();
    daemon.register(info).map_err(|e| e.to_string())?;
    Ok(Announcement { daemon, fullname })
}

impl Announcement {
    /// The announced instance (`NAME._wyoming._tcp.local.`).
    pub fn fullname(&self) -> &str {
        &self.fullname
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

/// This machine's name, for the announcement's address records.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "glagol".into())
}
