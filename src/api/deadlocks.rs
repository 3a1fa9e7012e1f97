//! obshell's deadlock history answer (`GET /api/v1/tenant/{name}/deadlocks`): its
//! `bo.DeadLock` events, each with the `bo.DeadLockNode`s of its cycle, a page at a
//! time. Where the events come from is the kind's business (OceanBase's deadlock
//! event history, InnoDB's latest detected deadlock).

use super::answers::PageInfo;
use super::params::PageParams;
use serde::Serialize;

pub use super::params::MAX_PAGE_EVENTS;

/// One detected deadlock: obshell's `bo.DeadLock`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLock {
    pub event_id: String,
    /// When it was detected, RFC 3339 in UTC (Go's `time.Time` in obshell).
    pub report_time: String,
    /// How many transactions the cycle had.
    pub size: i64,
    pub nodes: Vec<DeadLockNode>,
}

/// One transaction of a deadlock's cycle: obshell's `bo.DeadLockNode`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeadLockNode {
    pub svr_ip: String,
    pub svr_port: i64,
    /// Its place in the cycle, from 1.
    pub idx: i64,
    /// The transaction (OceanBase's tx id or hash, InnoDB's transaction id).
    pub transaction_hash: String,
    /// Whether it was chosen as the victim and rolled back.
    pub roll_backed: bool,
    /// What it waited for (a row key, an index of a table).
    pub resource: String,
    /// The statement it was running, where the engine kept it.
    pub sql: String,
}

/// obshell's `bo.PaginatedDeadLocks`.
#[derive(Debug, PartialEq, Serialize)]
pub struct DeadLockPage {
    pub page: PageInfo,
    pub contents: Vec<DeadLock>,
}

impl DeadLockPage {
    /// The page `params` asks for of `total` events, holding `contents`; its `size` is
    /// what a page holds ([`MAX_PAGE_EVENTS`] at most).
    pub fn new(params: &PageParams, total: u64, contents: Vec<DeadLock>) -> Self {
        let size = params.size();
        Self {
            page: PageInfo {
                total_elements: total,
                total_pages: total.div_ceil(size),
                size,
                number: params.page,
                recorded_at: None,
                truncated: None,
            },
            contents,
        }
    }
}

/// `micros` since 1970-01-01 UTC as RFC 3339 (`2026-12-04T10:00:00.003187Z`); the
/// epoch for a value before it.
pub fn rfc3339_micros(micros: i64) -> String {
    let micros = micros.max(0);
    let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The civil date of `days` since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_796_413_350_003_187),
            "2026-12-04T19:42:30.003187Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(-5), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_page_holds_at_most_its_cap_and_says_so() {
        let params = PageParams {
            page: 2,
            size: u64::MAX,
        };
        let page = DeadLockPage::new(&params, 250, Vec::new());
        assert_eq!(
            page.page,
            PageInfo {
                total_elements: 250,
                total_pages: 3,
                size: MAX_PAGE_EVENTS,
                number: 2,
                recorded_at: None,
                truncated: None,
            }
        );
        assert_eq!(params.offset(), Some(100));
    }
}
