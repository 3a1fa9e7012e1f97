//! Counters the exporter sums over parts: a cluster's servers each count their own
//! logons, a PostgreSQL server counts sessions per database. A plain sum drops when
//! one part restarts (its counter starts again at 0) or goes (a database dropped, an
//! observer gone), and Prometheus reads any drop as a reset of the whole counter:
//! `rate()` would then read the whole sum as new connections, a storm that never
//! was. Summed here part by part, the total only grows: a part's reset adds what it
//! counted since, a part that goes takes nothing away.

use std::collections::{BTreeMap, HashMap};

/// A counter: its tenant, what it counts (`connections`, `refused`, `ended`) and the
/// reason (empty for none).
pub type CounterKey = (String, String, String);

/// What one read found: per counter, each part's value.
pub type CounterParts = BTreeMap<CounterKey, BTreeMap<String, u64>>;

/// The counters' totals from read to read.
#[derive(Debug, Default)]
pub struct SummedCounters {
    counters: HashMap<CounterKey, Summed>,
}

#[derive(Debug, Default)]
struct Summed {
    /// Each part's value at the last read.
    last: BTreeMap<String, u64>,
    total: u64,
}

impl SummedCounters {
    /// Adds a read's parts, and gives each counter it found its total. The first read
    /// of a counter is the sum of its parts; later ones add each part's increase (a
    /// part lower than before restarted: all of it is new). A counter or part the
    /// read did not find is forgotten, so what is kept is bounded by one read.
    pub fn count(&mut self, read: CounterParts) -> BTreeMap<CounterKey, u64> {
        self.counters.retain(|key, _| read.contains_key(key));
        read.into_iter()
            .map(|(key, parts)| {
                let summed = self.counters.entry(key.clone()).or_default();
                for (part, &now) in &parts {
                    let before = summed.last.get(part).copied();
                    let added = match before {
                        Some(before) if now >= before => now - before,
                        _ => now,
                    };
                    summed.total = summed.total.saturating_add(added);
                }
                summed.last = parts;
                (key, summed.total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(parts: &[(&str, u64)]) -> CounterParts {
        let key = ("t".to_string(), "connections".to_string(), String::new());
        let parts = parts.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        BTreeMap::from([(key, parts)])
    }

    fn total(counters: &mut SummedCounters, parts: &[(&str, u64)]) -> u64 {
        *counters.count(read(parts)).values().next().unwrap()
    }

    /// A server that restarts, or goes, never lowers the total; one that comes adds
    /// what it counted.
    #[test]
    fn the_total_only_grows() {
        let mut counters = SummedCounters::default();
        assert_eq!(total(&mut counters, &[("a", 100), ("b", 23)]), 123);
        assert_eq!(total(&mut counters, &[("a", 110), ("b", 25)]), 135);
        // b restarted: its 4 since are new.
        assert_eq!(total(&mut counters, &[("a", 111), ("b", 4)]), 140);
        // b went: nothing taken away.
        assert_eq!(total(&mut counters, &[("a", 112)]), 141);
        // c came, with 7.
        assert_eq!(total(&mut counters, &[("a", 112), ("c", 7)]), 148);
        // A counter the read no longer has is forgotten.
        assert!(counters.count(BTreeMap::new()).is_empty());
        assert!(counters.counters.is_empty());
    }
}
