//! What is known of a MySQL server's connections across cycles, by connection id:
//! each one's program (its `program_name` connection attribute, for the
//! applications) and its performance_schema thread id (for its waits). Both are
//! fixed for a connection's life, so each is read once.
//!
//! A join of the processlist to `performance_schema.session_connect_attrs` each
//! cycle doubled MariaDB's cost of a cycle (bench 8c): the relation has no index
//! there, and the server parses every connection's attributes to fill it. A
//! connection's attributes are sent once, when it connects, so the grouping sends
//! each group's connection ids instead (`GROUP_CONCAT(p.ID)`), and only the
//! connections not seen before are read, by a statement of their own.

use crate::error::SourceError;
use crate::sql::{bad_answer, count, Cell};
use std::collections::{HashMap, HashSet};

/// Above this many unknown connections, the statement reads every connection's
/// program rather than an `IN` list of them (its cost is the relation's scan either
/// way, and the statement stays short).
const MAX_LISTED: usize = 1000;

/// The programs of the connections seen, by connection id (None: it named none),
/// and the thread ids of those seen active.
#[derive(Debug, Default)]
pub struct Connections {
    known: HashMap<u64, Option<String>, foldhash::fast::RandomState>,
    threads: HashMap<u64, u64, foldhash::fast::RandomState>,
}

/// The columns of a statement of programs: connection id, its `program_name`.
pub const PROGRAM_COLUMNS: usize = 2;

impl Connections {
    /// The connections of `ids` whose program is not known yet, each once.
    pub fn unknown<'a>(&self, ids: impl Iterator<Item = &'a u64>) -> Vec<u64> {
        let mut seen = HashSet::new();
        ids.filter(|id| !self.known.contains_key(id) && seen.insert(**id))
            .copied()
            .collect()
    }

    /// The statement reading the programs of `ids` (see [`PROGRAM_COLUMNS`]).
    pub fn statement(prefix: &str, ids: &[u64]) -> String {
        let mut sql = format!(
            "{prefix}SELECT a.PROCESSLIST_ID, a.ATTR_VALUE FROM performance_schema.session_connect_attrs a \
             WHERE a.ATTR_NAME = 'program_name'"
        );
        if ids.len() <= MAX_LISTED {
            let list: Vec<String> = ids.iter().map(u64::to_string).collect();
            sql.push_str(&format!(" AND a.PROCESSLIST_ID IN ({})", list.join(", ")));
        }
        sql
    }

    /// Learns one row of a statement of programs; `asked` are the connections it was
    /// sent for, which learn "none" when it has no row of theirs (see [`Connections::settle`]).
    pub fn learn<C: Cell>(&mut self, values: Vec<C>) -> Result<(), SourceError> {
        let got = values.len();
        let [id, program]: [C; PROGRAM_COLUMNS] = values.try_into().map_err(|_| {
            bad_answer(format!(
                "expected {PROGRAM_COLUMNS} columns of programs, got {got}"
            ))
        })?;
        let id = count(id, "PROCESSLIST_ID")?;
        let program = program.into_text().filter(|p| !p.is_empty());
        self.known.insert(id, program);
        Ok(())
    }

    /// After a statement of programs for `asked`: those it had no row of named none.
    pub fn settle(&mut self, asked: &[u64]) {
        for id in asked {
            self.known.entry(*id).or_insert(None);
        }
    }

    /// The program of connection `id`, if it named one.
    pub fn of(&self, id: u64) -> Option<&str> {
        self.known.get(&id).and_then(|p| p.as_deref())
    }

    /// The performance_schema thread of connection `id`, when known.
    pub fn thread(&self, id: u64) -> Option<u64> {
        self.threads.get(&id).copied()
    }

    /// Learns the performance_schema thread of connection `id`.
    pub fn learn_thread(&mut self, id: u64, thread: u64) {
        self.threads.insert(id, thread);
    }

    /// Forgets the connections not in `current` (they have ended): the cache holds
    /// the server's connections, no more.
    pub fn keep_only(&mut self, current: &HashSet<u64>) {
        self.known.retain(|id, _| current.contains(id));
        self.threads.retain(|id, _| current.contains(id));
    }
}

/// The connection ids of a `GROUP_CONCAT(p.ID)`: comma-separated whole numbers.
pub fn ids_of(text: &str) -> Result<Vec<u64>, SourceError> {
    text.split(',')
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.trim()
                .parse()
                .map_err(|_| bad_answer(format!("a group's connection id `{id}` is not a number")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unknown_connections_are_read_and_ended_ones_forgotten() {
        let mut programs = Connections::default();
        let ids = ids_of("7,8,9").unwrap();
        assert_eq!(programs.unknown(ids.iter().chain(&[7])), [7, 8, 9]);
        let sql = Connections::statement("", &[7, 8, 9]);
        assert!(sql.ends_with("AND a.PROCESSLIST_ID IN (7, 8, 9)"), "{sql}");
        programs.learn(vec![Some("7"), Some("web")]).unwrap();
        programs.learn(vec![Some("8"), Some("")]).unwrap();
        programs.settle(&[7, 8, 9]);
        assert_eq!(programs.unknown([7, 8, 9, 10].iter()), [10]);
        assert_eq!(
            (programs.of(7), programs.of(8), programs.of(9)),
            (Some("web"), None, None)
        );
        programs.keep_only(&HashSet::from([8]));
        assert_eq!(programs.unknown([7, 8].iter()), [7]);
        let many: Vec<u64> = (0..=MAX_LISTED as u64).collect();
        assert!(!Connections::statement("", &many).contains(" IN ("));
        assert!(ids_of("1,x").is_err());
        assert!(programs.learn(vec![Some("1")]).is_err());
    }
}
