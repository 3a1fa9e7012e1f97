//! Each client's share of the connections: one client cannot take every slot.
//!
//! `--web.max-connections` bounds the connections served at once, so that no number
//! of clients can exhaust the process. Alone, that bound is also a way to blind the
//! exporter: a client that opens as many connections as the bound allows and holds
//! them (idle, trickling, withholding a body, not reading its answers) keeps every
//! scrape waiting until its deadlines end them, and can open them again. So a client
//! ([`ClientKey`]: an IPv4 address or an IPv6 /64) holds at most
//! `--web.max-connections-per-client` (half the bound by default) and a scraper from
//! another address always finds a slot. Behind a reverse proxy every client has the
//! proxy's address: raise the share to the bound there, and let the proxy limit its
//! clients.

use crate::web::ClientKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The connections each client holds now.
#[derive(Debug)]
pub struct Shares {
    per_client: usize,
    /// Only clients with open connections: an entry goes with its last connection,
    /// so the map never holds more entries than there are connections.
    held: Mutex<HashMap<ClientKey, usize>>,
}

/// One connection of a client, counted until it is dropped.
#[derive(Debug)]
pub struct Share {
    shares: Arc<Shares>,
    client: ClientKey,
}

impl Shares {
    pub fn new(per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            per_client: per_client.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A connection for `client`, or None when it already holds its share.
    pub fn take(self: &Arc<Self>, client: ClientKey) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(client).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(Share {
            shares: self.clone(),
            client,
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn client(last: u8) -> ClientKey {
        ClientKey::from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let shares = Shares::new(2);
        let first = shares.take(client(2)).expect("first");
        let second = shares.take(client(2)).expect("second");
        assert!(shares.take(client(2)).is_none(), "past the share");
        let other = shares
            .take(client(1))
            .expect("another client is not concerned");
        drop(first);
        let again = shares
            .take(client(2))
            .expect("a closed connection frees a place");
        drop((second, again, other));
        assert!(
            shares.held.lock().unwrap().is_empty(),
            "no entry outlives its connections"
        );
    }

    #[test]
    fn a_share_is_at_least_one() {
        let shares = Shares::new(0);
        let one = shares.take(client(3));
        assert!(one.is_some());
        assert!(shares.take(client(3)).is_none());
    }
}
