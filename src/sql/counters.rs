//! Counters the exporter sums over parts: a cluster's servers each count their own
//! logons, a PostgreSQL server counts sessions per database. A plain sum drops when
//! one part restarts (its counter starts again at 0) or goes (a database dropped, an
//! observer gone), and Prometheus reads any drop as a reset of the whole counter:
//! `rate()` would then read the whole sum as new connections, a storm that never
//! was. Summed here part by part, the total only grows: a part's reset adds what it
//! counted since, a part that goes takes nothing away, and one that comes back
//! (a server a read did not reach, the server a single tenant's view answered
//! from) adds only what it counted while it was away.
//!
//! A counter of one part only (a MySQL server's) is its own value: Prometheus
//! handles that server's restarts itself, and the value then stays continuous
//! across a restart of the exporter, which forgets what it summed. A summed total
//! can drop on such a restart after a part has reset (it becomes the parts' plain
//! sum again), which Prometheus reads as one reset.

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
    /// Each part's value at the last read that found it, and how many reads in a
    /// row have not found it since.
    last: BTreeMap<String, (u64, u32)>,
    total: u64,
}

/// Reads in a row a part may be missing before it is forgotten (an hour at the
/// default `limits_interval`): what is kept stays bounded by the parts of that
/// hour, and a part back within it adds only its increase.
const MAX_MISSED_READS: u32 = 60;

/// The part name of a counter that has no parts.
const NO_PART: &str = "";

impl SummedCounters {
    /// Adds a read's parts, and gives each counter it found its total. The first read
    /// of a counter is the sum of its parts; later ones add each part's increase (a
    /// part lower than before restarted: all of it is new). A part the read did not
    /// find keeps its last value for [`MAX_MISSED_READS`] reads; a counter the read
    /// did not find is forgotten. A counter without parts is its value.
    pub fn count(&mut self, read: CounterParts) -> BTreeMap<CounterKey, u64> {
        self.counters.retain(|key, _| read.contains_key(key));
        read.into_iter()
            .map(|(key, parts)| {
                let summed = self.counters.entry(key.clone()).or_default();
                if parts.len() == 1 && parts.contains_key(NO_PART) {
                    summed.total = parts[NO_PART];
                    summed.last.clear();
                    return (key, summed.total);
                }
                for (part, &now) in &parts {
                    let added = match summed.last.get(part) {
                        Some(&(before, _)) if now >= before => now - before,
                        _ => now,
                    };
                    summed.total = summed.total.saturating_add(added);
                }
                summed.last.retain(|part, (_, missed)| {
                    *missed += 1;
                    parts.contains_key(part) || *missed <= MAX_MISSED_READS
                });
                for (part, now) in parts {
                    summed.last.insert(part, (now, 0));
                }
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

    /// A part that a read misses and the next finds again (a server unreachable
    /// for a while; a single tenant's view answered by another server each time)
    /// adds what it counted while away, not its whole count again; one missing for
    /// longer than [`MAX_MISSED_READS`] reads is forgotten.
    #[test]
    fn a_part_back_after_a_missed_read_adds_only_its_increase() {
        let mut counters = SummedCounters::default();
        assert_eq!(total(&mut counters, &[("a", 1_000_000)]), 1_000_000);
        assert_eq!(total(&mut counters, &[("b", 2_000_000)]), 3_000_000);
        assert_eq!(total(&mut counters, &[("a", 1_000_010)]), 3_000_010);
        assert_eq!(total(&mut counters, &[("b", 2_000_005)]), 3_000_015);
        for _ in 0..=MAX_MISSED_READS {
            total(&mut counters, &[("b", 2_000_005)]);
        }
        let kept = &counters.counters.values().next().unwrap().last;
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["b"], "a is forgotten");
        // Back after that: its whole count is new, as for a part never seen.
        assert_eq!(
            total(&mut counters, &[("a", 1_000_020), ("b", 2_000_005)]),
            4_000_035
        );
    }

    /// A counter without parts (one MySQL server's) is the server's own value, so a
    /// restart of the exporter does not lower it; the server's restart lowers it,
    /// which Prometheus reads as the reset it is.
    #[test]
    fn a_counter_without_parts_is_its_value() {
        let mut counters = SummedCounters::default();
        assert_eq!(total(&mut counters, &[("", 100)]), 100);
        assert_eq!(total(&mut counters, &[("", 130)]), 130);
        assert_eq!(total(&mut counters, &[("", 4)]), 4);
        let mut restarted = SummedCounters::default();
        assert_eq!(total(&mut restarted, &[("", 7)]), 7);
    }
}
