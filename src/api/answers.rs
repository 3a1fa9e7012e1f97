//! What the session API answers: obshell's `PaginatedTenantSessions` and
//! `TenantSessionStats`, as JSON.

use super::session::TenantSession;
use crate::stats::{Counts, TenantStats, NONE_LABEL};
use serde::Serialize;
use std::collections::BTreeMap;

/// A page of the list, obshell's `PaginatedTenantSessions`, whose sessions arrive
/// one at a time as the database sends them, so an answer of any size costs bounded
/// memory. The channel ends after the last session, or after an error.
#[derive(Debug)]
pub struct PageStream {
    pub page: PageInfo,
    pub sessions: tokio::sync::mpsc::Receiver<Result<TenantSession, super::Failure>>,
}

/// obshell's `CustomPage`; `total_elements` is the real number of sessions matching
/// the filters (obshell reports the page's length).
#[derive(Debug, Serialize, PartialEq)]
pub struct PageInfo {
    pub total_elements: u64,
    pub total_pages: u64,
    pub size: u64,
    pub number: u64,
    /// Not obshell's, and only in a list read from the session history (`at`): the
    /// time of the cycle that recorded it, and how many of its sessions the cap per
    /// cycle left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
}

/// obshell's `TenantSessionStats`; `max_active_time` covers active sessions only.
#[derive(Debug, Serialize, PartialEq)]
pub struct SessionStats {
    pub total_count: u64,
    pub active_count: u64,
    pub max_active_time: f64,
    pub db_stats: Vec<DbStat>,
    pub user_stats: Vec<UserStat>,
    pub client_stats: Vec<ClientStat>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DbStat {
    pub db_name: String,
    pub total_count: u64,
    pub active_count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct UserStat {
    pub user_name: String,
    pub total_count: u64,
    pub active_count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ClientStat {
    pub client_ip: String,
    pub total_count: u64,
    pub active_count: u64,
}

impl From<TenantStats> for SessionStats {
    fn from(stats: TenantStats) -> Self {
        // Largest first, like obshell's example; names break ties. The metrics'
        // `__none__` (no database, no client address) is the API's empty string.
        fn ranked(values: BTreeMap<String, Counts>) -> Vec<(String, Counts)> {
            let mut list: Vec<(String, Counts)> = values
                .into_iter()
                .map(|(name, counts)| {
                    (
                        if name == NONE_LABEL {
                            String::new()
                        } else {
                            name
                        },
                        counts,
                    )
                })
                .collect();
            list.sort_by(|(a, x), (b, y)| y.sessions.cmp(&x.sessions).then_with(|| a.cmp(b)));
            list
        }
        Self {
            total_count: stats.sessions,
            active_count: stats.active_sessions,
            max_active_time: stats.max_active_time,
            db_stats: ranked(stats.by_db)
                .into_iter()
                .map(|(db_name, c)| DbStat {
                    db_name,
                    total_count: c.sessions,
                    active_count: c.active,
                })
                .collect(),
            user_stats: ranked(stats.by_user)
                .into_iter()
                .map(|(user_name, c)| UserStat {
                    user_name,
                    total_count: c.sessions,
                    active_count: c.active,
                })
                .collect(),
            client_stats: ranked(stats.by_client)
                .into_iter()
                .map(|(client_ip, c)| ClientStat {
                    client_ip,
                    total_count: c.sessions,
                    active_count: c.active,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_ranked_and_none_is_empty() {
        let mut stats = TenantStats {
            sessions: 10,
            active_sessions: 5,
            max_active_time: 3.5,
            ..TenantStats::default()
        };
        stats.by_db.insert(
            "sys".into(),
            Counts {
                sessions: 2,
                active: 1,
                ..Counts::default()
            },
        );
        stats.by_db.insert(
            "test".into(),
            Counts {
                sessions: 8,
                active: 4,
                ..Counts::default()
            },
        );
        stats.by_client.insert(
            NONE_LABEL.into(),
            Counts {
                sessions: 1,
                active: 0,
                ..Counts::default()
            },
        );
        let api = SessionStats::from(stats);
        assert_eq!(api.db_stats[0].db_name, "test");
        assert_eq!(api.db_stats[1].db_name, "sys");
        assert_eq!(api.client_stats[0].client_ip, "");
        let json = serde_json::to_value(&api).unwrap();
        assert_eq!(json["db_stats"][0]["total_count"], 8);
        assert_eq!(json["max_active_time"], 3.5);
    }
}
