//! The text of kept sessions, shared rather than copied.
//!
//! With the session history on, a cycle keeps up to `max_sessions` sessions per
//! tenant, each with about ten values of text (server, user, client, wait event,
//! statement, ...). Most of them are the same from session to session and from
//! cycle to cycle. Copied, they were one allocation each, made by the cycle and
//! freed by the recorder's thread: at 20,000 kept sessions a cycle, a third of
//! what the history cost the exporter. A [`Word`] is one shared allocation per
//! distinct value: the cycle looks a value up (or finds it in the memo of its
//! position) but copies it only when new, and the store caches its ids by the
//! word's identity, so there a repeated value is neither hashed as text nor
//! compared.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

/// A value of a kept session: cheap to clone, compared and hashed as text.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Word(Arc<str>);

impl Word {
    /// Where its text lives: the same for every clone of one word, and for no other
    /// word while this one is alive. A cache keyed by it must hold the word.
    pub fn identity(&self) -> usize {
        Arc::as_ptr(&self.0) as *const u8 as usize
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Word {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Word {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Word {
    fn from(text: &str) -> Self {
        Word(Arc::from(text))
    }
}

impl From<String> for Word {
    fn from(text: String) -> Self {
        Word(Arc::from(text))
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One target's words, kept from cycle to cycle. A handle: clones share the set.
///
/// Only the target's own cycle uses it, and its cycles never overlap, so the lock
/// is never contended; a kept session takes it once or twice (MySQL's later reads
/// complete what the grouping kept).
#[derive(Clone, Default)]
pub struct Words(Arc<Mutex<Set>>);

#[derive(Default)]
struct Set {
    words: HashSet<Word, foldhash::fast::RandomState>,
    /// The word last given at each position of [`Words::words`]: consecutive
    /// sessions often share their state, wait or user, and a word just used is
    /// compared in cache, not looked up in a set of thousands.
    last: Vec<Word>,
}

/// The set's word of `text`, made when it has none.
fn intern(words: &mut HashSet<Word, foldhash::fast::RandomState>, text: &str) -> Word {
    match words.get(text) {
        Some(word) => word.clone(),
        None => {
            let word = Word::from(text);
            words.insert(word.clone());
            word
        }
    }
}

impl fmt::Debug for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Words").finish_non_exhaustive()
    }
}

impl Words {
    /// The words of `texts`, in order, each made only if the set has none of its
    /// text.
    pub fn words<const N: usize>(&self, texts: [&str; N]) -> [Word; N] {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Set { words, last } = &mut *guard;
        if last.len() < N {
            // Empty at first, as the set's own empty word: a word the set does not
            // hold would reach the store with an identity of its own each cycle.
            let empty = intern(words, "");
            last.resize(N, empty);
        }
        let mut at = 0;
        texts.map(|text| {
            let slot = &mut last[at];
            at += 1;
            if slot.as_str() != text {
                *slot = intern(words, text);
            }
            slot.clone()
        })
    }

    /// The word of `text`.
    pub fn word(&self, text: &str) -> Word {
        let [word] = self.words([text]);
        word
    }

    /// Forgets the words that nothing else holds any more (no kept session on its
    /// way to the store, no cache of the store's), so the set is bounded by what
    /// they hold. Called once a cycle: a pass over the set, no allocation.
    pub fn sweep(&self) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.last.clear();
        set.words.retain(|word| Arc::strong_count(&word.0) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Words {
        /// How many distinct words the set holds.
        fn len(&self) -> usize {
            self.0.lock().unwrap().words.len()
        }
    }

    /// The same text is one word, shared: the second sight allocates nothing.
    #[test]
    fn the_same_text_is_one_word() {
        let words = Words::default();
        let [a, b, c] = words.words(["app", "db", "app"]);
        assert_eq!(a.identity(), c.identity());
        assert_ne!(a.identity(), b.identity());
        assert_eq!(words.word("db").identity(), b.identity());
        // Again, each position's last word, or the set's.
        let again = words.words(["db", "db", "app"]);
        assert_eq!(
            again.map(|w| w.identity()),
            [b.identity(), b.identity(), a.identity()]
        );
        assert_eq!((a.as_str(), &*b), ("app", "db"));
        assert_eq!(words.len(), 3, "app, db and the empty word");
        // An empty text is the set's one empty word, at any position, and stays
        // it after a sweep.
        let [e1, e2, e3, e4] = words.words(["", "", "", ""]);
        assert!([&e2, &e3, &e4]
            .iter()
            .all(|e| e.identity() == e1.identity()));
        drop([e2, e3, e4]);
        words.sweep();
        assert_eq!(words.words(["x", ""])[1].identity(), e1.identity());
    }

    /// A sweep forgets what nothing holds, and keeps what something does: a word
    /// held elsewhere is still the one the set gives back.
    #[test]
    fn a_sweep_forgets_only_what_nothing_holds() {
        let words = Words::default();
        let held = words.word("held");
        drop(words.word("dropped"));
        words.sweep();
        assert_eq!(words.len(), 1);
        assert_eq!(words.word("held").identity(), held.identity());
        drop(held);
        words.sweep();
        assert_eq!(words.len(), 0);
    }

    /// A word compares, orders and prints as its text.
    #[test]
    fn a_word_is_its_text() {
        let a = Word::from("a");
        assert_eq!(a, "a");
        assert!(a < Word::from(String::from("b")));
        assert_eq!(format!("{a} {a:?}"), "a \"a\"");
        assert_eq!(Word::default(), "");
    }
}
