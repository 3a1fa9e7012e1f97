//! The rows of a kind's statement of the pile-up (see [`crate::sessions::pileup`]):
//! each is `(0, waiter, blocker, seconds waited)` or `(1, session, NULL, seconds
//! since its transaction began)`, as every kind writes it.

use super::{bad_answer, Cell};
use crate::sessions::pileup::LockWait;
use crate::sessions::PileupRows;
use crate::source::error::SourceError;

/// The columns of a pile-up row, for messages.
const COLUMNS: [&str; 4] = ["kind", "session", "blocker", "seconds"];

/// Adds one row to `rows`; a row of another shape is an error naming its column.
pub fn add_pileup_row<C: Cell>(
    rows: &mut PileupRows,
    cells: impl IntoIterator<Item = C>,
) -> Result<(), SourceError> {
    let mut cells = cells.into_iter();
    let mut next = |i: usize| {
        cells
            .next()
            .ok_or_else(|| bad_answer(format!("the pile-up row has no column {}", COLUMNS[i])))
    };
    let kind = id(next(0)?, 0)?;
    let session = id(next(1)?, 1)?;
    let blocker = next(2)?;
    // A wait or transaction that began after the server's clock was read is 0 s old.
    let seconds = next(3)?.into_number(COLUMNS[3])?.unwrap_or(0.0).max(0.0);
    match (kind, session) {
        (_, None) => {}
        (Some(0), Some(waiter)) => {
            if let Some(blocker) = id(blocker, 2)? {
                rows.lock_waits.push(LockWait {
                    waiter,
                    blocker,
                    wait_seconds: seconds,
                });
            }
        }
        (Some(1), Some(session)) => rows.transactions.push((session, seconds)),
        (other, _) => {
            return Err(bad_answer(format!(
                "the pile-up row's kind is {other:?}, not 0 (a wait) or 1 (a transaction)"
            )))
        }
    }
    Ok(())
}

/// A whole number, or None for NULL (a transaction of no session: a background one).
fn id<C: Cell>(cell: C, column: usize) -> Result<Option<u64>, SourceError> {
    let Some(text) = cell.into_text() else {
        return Ok(None);
    };
    text.trim().parse::<u64>().map(Some).map_err(|_| {
        bad_answer(format!(
            "the pile-up row's {} is `{}`, not a session id",
            COLUMNS[column],
            text.chars().take(40).collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_both_kinds_are_read_and_bad_ones_named() {
        let mut rows = PileupRows::default();
        add_pileup_row(&mut rows, [Some("0"), Some("12"), Some("7"), Some("3.5")]).unwrap();
        add_pileup_row(&mut rows, [Some("1"), Some("7"), None, Some("40.25")]).unwrap();
        // A background transaction (no session), and a clock read a moment early.
        add_pileup_row(&mut rows, [Some("1"), None, None, Some("9")]).unwrap();
        add_pileup_row(&mut rows, [Some("1"), Some("8"), None, Some("-0.001")]).unwrap();
        assert_eq!(
            rows.lock_waits,
            vec![LockWait {
                waiter: 12,
                blocker: 7,
                wait_seconds: 3.5
            }]
        );
        assert_eq!(rows.transactions, vec![(7, 40.25), (8, 0.0)]);
        let bad = add_pileup_row(&mut rows, [Some("0"), Some("x"), None, None]).unwrap_err();
        assert!(bad.to_string().contains("session"), "{bad}");
        let bad = add_pileup_row(&mut rows, [Some("5"), Some("1"), None, None]).unwrap_err();
        assert!(bad.to_string().contains("kind"), "{bad}");
        assert!(add_pileup_row(&mut rows, [Some("0"), Some("1")]).is_err());
    }
}
