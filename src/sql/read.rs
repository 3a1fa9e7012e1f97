//! The seam between a kind's cycle and its driver: a [`Connection`] sends one
//! statement and hands its rows over as they arrive, and [`read`] decodes them
//! through a closure, keeping the first bad row as the answer's error.
//!
//! A kind's cycle is written against [`Connection`], not against a driver, so that a
//! unit test can give it a connection with fixed answers ([`fixtures::Scripted`]) and
//! check the exact statements it sends, in order, and the exact statistics it makes
//! of their rows. The real servers' tests keep checking the drivers' side.
//!
//! [`fixtures::Scripted`]: super::fixtures::Scripted

use super::Cell;
use crate::error::SourceError;
use std::future::Future;

/// One connection of a cycle: it sends `sql` and gives each row's values to `each`
/// in the order they arrive. The statement is sent as written, after the driver's own
/// rewriting (a MySQL-protocol connection writes its own session ids where the text
/// says [`OWN_SESSIONS`](super::OWN_SESSIONS)).
pub trait Connection: Send {
    /// A value of a row as this driver hands it over, borrowed from the row where
    /// the driver lends it.
    type Cell<'r>: Cell;
    /// Why a statement failed in the driver.
    type Error: Send;

    fn rows<F>(
        &mut self,
        sql: &str,
        each: F,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send
    where
        F: for<'r> FnMut(Vec<Self::Cell<'r>>) + Send;
}

/// Why a statement gave no statistics: the driver failed (classified by the kind,
/// which knows what it was doing), or the server's answer is not what was asked for.
#[derive(Debug)]
pub enum SqlError<E> {
    Driver(E),
    Answer(SourceError),
}

/// Sends `sql` on `conn` and decodes each row with `each` as it arrives. The first
/// row `each` refuses is the answer's error: the rows after it are drained unread, so
/// the connection stays usable.
pub async fn read<C, F>(conn: &mut C, sql: &str, mut each: F) -> Result<(), SqlError<C::Error>>
where
    C: Connection,
    F: for<'r> FnMut(Vec<C::Cell<'r>>) -> Result<(), SourceError> + Send,
{
    let mut refused = None;
    conn.rows(sql, |row| {
        if refused.is_none() {
            refused = each(row).err();
        }
    })
    .await
    .map_err(SqlError::Driver)?;
    match refused {
        Some(err) => Err(SqlError::Answer(err)),
        None => Ok(()),
    }
}
