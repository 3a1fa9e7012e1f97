//! DBSS's client session distribution: sessions per audited database, as the kind's
//! own statistics ([`KindStatistics`]) with its own metric family,
//! [`CLIENT_SESSIONS`].

use crate::stats::own::{Family, KindStatistics, Series, Value};
use crate::stats::{cap, Tally, NONE_LABEL, OTHER_LABEL};
use std::collections::BTreeMap;

/// `dbsession_dbss_client_sessions{instance_id, db_id, db_ip, db_name}`.
pub static CLIENT_SESSIONS: Family = Family {
    name: "dbsession_dbss_client_sessions",
    help: "Sessions Huawei Cloud DBSS counted per audited database over the target's time_range (its client session distribution); __none__ where DBSS gave no value.",
};

/// A DBSS instance's client session distribution: sessions per audited database,
/// ready to be labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientDistribution {
    pub instance_id: String,
    /// Keyed by (db_id, db_ip, db_name), each [`NONE_LABEL`] where DBSS sent null or
    /// nothing; entries DBSS sent twice with the same labels are added up.
    pub sessions: BTreeMap<(String, String, String), u64>,
    /// Databases summed into the `__other__` one by the cardinality guard.
    pub dropped: usize,
}

/// One entry of DBSS's answer, as sent (any field may be null).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientEntry {
    pub db_id: Option<String>,
    pub db_ip: Option<String>,
    pub db_name: Option<String>,
    pub session_num: u64,
}

impl ClientDistribution {
    /// Adds up `entries` by their labels.
    pub fn new(instance_id: &str, entries: Vec<ClientEntry>) -> Self {
        let label = |value: Option<String>| match value {
            Some(text) if !text.is_empty() => text,
            _ => NONE_LABEL.to_string(),
        };
        let mut sessions: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for entry in entries {
            let key = (label(entry.db_id), label(entry.db_ip), label(entry.db_name));
            sessions.entry(key).or_default().absorb(entry.session_num);
        }
        Self {
            instance_id: instance_id.to_string(),
            sessions,
            dropped: 0,
        }
    }

    /// Applies the cardinality guard ([`cap`]): the databases with the most sessions
    /// keep their series, the rest are summed into one whose three labels are
    /// [`OTHER_LABEL`].
    pub fn cap(&mut self, max: usize) {
        let other = (
            OTHER_LABEL.to_string(),
            OTHER_LABEL.to_string(),
            OTHER_LABEL.to_string(),
        );
        self.dropped = cap(&mut self.sessions, max, other);
    }
}

impl KindStatistics for ClientDistribution {
    fn cap(&mut self, max: usize) {
        ClientDistribution::cap(self, max);
    }

    fn series(&self) -> Vec<Series> {
        self.sessions
            .iter()
            .map(|((db_id, db_ip, db_name), sessions)| Series {
                family: &CLIENT_SESSIONS,
                labels: vec![
                    ("instance_id", self.instance_id.clone()),
                    ("db_id", db_id.clone()),
                    ("db_ip", db_ip.clone()),
                    ("db_name", db_name.clone()),
                ],
                value: Value::Count(*sessions),
            })
            .collect()
    }

    fn dropped(&self) -> Vec<(&'static str, usize)> {
        vec![("dbss_database", self.dropped)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: Option<&str>, ip: Option<&str>, name: Option<&str>, n: u64) -> ClientEntry {
        ClientEntry {
            db_id: id.map(str::to_string),
            db_ip: ip.map(str::to_string),
            db_name: name.map(str::to_string),
            session_num: n,
        }
    }

    fn key(id: &str, ip: &str, name: &str) -> (String, String, String) {
        (id.to_string(), ip.to_string(), name.to_string())
    }

    #[test]
    fn dbss_entries_with_nulls_become_labels_and_duplicates_add_up() {
        // The documented example: null db_id and db_name.
        let clients = ClientDistribution::new(
            "inst",
            vec![
                entry(None, Some("100.79.0.248"), None, 16),
                entry(None, Some("100.79.0.247"), None, 13),
                entry(Some(""), Some("100.79.0.247"), None, 2),
                entry(Some("db1"), Some("10.0.0.37"), Some("orders"), 0),
            ],
        );
        let expected: BTreeMap<_, _> = [
            (key(NONE_LABEL, "100.79.0.247", NONE_LABEL), 15),
            (key(NONE_LABEL, "100.79.0.248", NONE_LABEL), 16),
            (key("db1", "10.0.0.37", "orders"), 0),
        ]
        .into();
        assert_eq!(clients.sessions, expected);
        assert_eq!((clients.instance_id.as_str(), clients.dropped), ("inst", 0));
    }

    #[test]
    fn dbss_guard_keeps_the_largest_and_sums_the_rest() {
        let entries = (1..=5)
            .map(|i| entry(Some(&format!("db{i}")), Some("10.0.0.1"), None, i))
            .collect();
        let mut clients = ClientDistribution::new("inst", entries);
        clients.cap(3);
        let expected: BTreeMap<_, _> = [
            (key("db5", "10.0.0.1", NONE_LABEL), 5),
            (key("db4", "10.0.0.1", NONE_LABEL), 4),
            (key(OTHER_LABEL, OTHER_LABEL, OTHER_LABEL), 1 + 2 + 3),
        ]
        .into();
        assert_eq!(clients.sessions, expected);
        assert_eq!(clients.dropped, 3);
        assert_eq!(clients.sessions.values().sum::<u64>(), 15);
    }

    /// A real database spelled like the marker is summed with the rest and counted,
    /// never kept beside it (the guard's one rule, see `stats::cap`).
    #[test]
    fn a_real_other_database_is_summed_and_counted() {
        let other = || {
            (
                OTHER_LABEL.to_string(),
                OTHER_LABEL.to_string(),
                OTHER_LABEL.to_string(),
            )
        };
        let mut clients = ClientDistribution::new(
            "inst",
            vec![
                entry(Some(OTHER_LABEL), Some(OTHER_LABEL), Some(OTHER_LABEL), 7),
                entry(Some("d1"), Some("10.0.0.1"), None, 9),
                entry(Some("d2"), Some("10.0.0.2"), None, 1),
            ],
        );
        clients.cap(2);
        assert_eq!(clients.dropped, 2);
        assert_eq!(clients.sessions[&other()], 8);
        assert_eq!(clients.sessions.len(), 2);
    }

    /// The kind's series: its family, the labels in the exposition's order, and the
    /// guard's count under the dimension `dbss_database`.
    #[test]
    fn the_distribution_is_its_own_family() {
        let clients = ClientDistribution::new("inst", vec![entry(Some("d"), None, None, 4)]);
        let series = KindStatistics::series(&clients);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].family, &CLIENT_SESSIONS);
        let names: Vec<&str> = series[0].labels.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["instance_id", "db_id", "db_ip", "db_name"]);
        assert_eq!(series[0].value, Value::Count(4));
        assert_eq!(KindStatistics::dropped(&clients), [("dbss_database", 0)]);
    }
}
