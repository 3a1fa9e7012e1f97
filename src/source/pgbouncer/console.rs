//! PgBouncer's admin console: `SHOW` commands over the simple query protocol, their
//! answers read by column name.
//!
//! The console is no SQL server: it answers `SHOW` commands only, and each PgBouncer
//! version adds columns to them (1.18 has `application_name` at the end of `SHOW
//! CLIENTS`, later versions an `id` and prepared statements). So every answer is read
//! by the names of its columns, resolved once per answer ([`Columns`]), never by
//! position; a column this PgBouncer lacks reads as NULL. [`Console`] is the seam
//! the cycle's unit tests fill with fixed answers.

use crate::sql::simple_text;
use std::future::Future;
use tokio_postgres::{Client, SimpleQueryMessage};

/// A connection to the admin console.
pub trait Console: Send {
    /// Why a command failed in the driver.
    type Error: Send;

    /// Sends `command` and gives each row to `each`, with the answer's column names.
    fn show<F>(
        &mut self,
        command: &str,
        each: F,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send
    where
        F: for<'r> FnMut(&[String], &[Option<&'r str>]) + Send;
}

impl Console for Client {
    type Error = tokio_postgres::Error;

    async fn show<F>(&mut self, command: &str, mut each: F) -> Result<(), tokio_postgres::Error>
    where
        F: for<'r> FnMut(&[String], &[Option<&'r str>]) + Send,
    {
        use futures_util::StreamExt;
        let stream = self.simple_query_raw(command).await?;
        let mut stream = std::pin::pin!(stream);
        let mut names: Vec<String> = Vec::new();
        while let Some(message) = stream.next().await {
            if let SimpleQueryMessage::Row(row) = message? {
                if names.len() != row.columns().len() {
                    names = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                let values: Vec<Option<&str>> =
                    (0..row.len()).map(|i| simple_text(&row, i)).collect();
                each(&names, &values);
            }
        }
        Ok(())
    }
}

/// The positions of the columns a decoder reads, found by name in an answer's
/// column names; resolved again only when the names change.
#[derive(Debug)]
pub struct Columns<const N: usize> {
    resolved_for: usize,
    at: [Option<usize>; N],
}

impl<const N: usize> Default for Columns<N> {
    fn default() -> Self {
        Self {
            resolved_for: 0,
            at: [None; N],
        }
    }
}

impl<const N: usize> Columns<N> {
    /// The positions of `wanted` in `names` (None: this PgBouncer has no such
    /// column).
    pub fn resolve(&mut self, names: &[String], wanted: [&str; N]) -> [Option<usize>; N] {
        if self.resolved_for != names.len() {
            self.at = wanted.map(|w| names.iter().position(|n| n == w));
            self.resolved_for = names.len();
        }
        self.at
    }
}

/// The value at `at` of `row`; None when the column is missing or NULL.
pub fn cell<'r>(row: &[Option<&'r str>], at: Option<usize>) -> Option<&'r str> {
    at.and_then(|i| row.get(i).copied().flatten())
}

#[cfg(test)]
pub mod fixtures {
    //! A console of fixed answers, for the cycle's unit tests.

    use super::Console;

    /// A scripted answer: the column names and the rows, or the driver's failure.
    type Answer = Result<(Vec<String>, Vec<Vec<Option<String>>>), String>;

    /// Answers each command with the rows scripted for it; records what was sent.
    #[derive(Debug, Default)]
    pub struct ScriptedConsole {
        answers: Vec<(String, Answer)>,
        pub sent: Vec<String>,
    }

    impl ScriptedConsole {
        /// The next `command` answers `header` (names separated by `|`) and `rows`
        /// (values separated by `|`, `∅` for NULL).
        pub fn answer(mut self, command: &str, header: &str, rows: &[&str]) -> Self {
            let names = header.split('|').map(str::to_string).collect();
            let rows = rows
                .iter()
                .map(|row| {
                    row.split('|')
                        .map(|v| (v != "∅").then(|| v.to_string()))
                        .collect()
                })
                .collect();
            self.answers.push((command.to_string(), Ok((names, rows))));
            self
        }

        /// The next `command` fails in the driver.
        pub fn fail(mut self, command: &str) -> Self {
            self.answers.push((
                command.to_string(),
                Err(format!("scripted failure of {command}")),
            ));
            self
        }
    }

    impl Console for ScriptedConsole {
        type Error = String;

        async fn show<F>(&mut self, command: &str, mut each: F) -> Result<(), String>
        where
            F: for<'r> FnMut(&[String], &[Option<&'r str>]) + Send,
        {
            self.sent.push(command.to_string());
            let at = self
                .answers
                .iter()
                .position(|(c, _)| c == command)
                .unwrap_or_else(|| panic!("no answer scripted for {command}"));
            let (_, answer) = self.answers.remove(at);
            let (names, rows) = answer?;
            for row in &rows {
                let values: Vec<Option<&str>> = row.iter().map(|v| v.as_deref()).collect();
                each(&names, &values);
            }
            Ok(())
        }
    }
}
