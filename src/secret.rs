//! Secrets: passwords and tokens, and the files they are read from.
//!
//! A leaf module, so that the configuration (which checks the files at load) and the
//! clients (which read them again when they change) share one reader without
//! importing each other. A secret never appears in an error, a log line or a `Debug`
//! print: messages name the file, never its content.
//!
//! The IAM token a DBSS target sends as `X-Auth-Token` is re-read whenever its file
//! changes: IAM tokens expire (24 h), so whatever renews them rewrites the file, and
//! the exporter notices on its next request without a reload. A `stat` per request
//! decides: the file is read again when its modification time, size or inode differ
//! (an atomic rename gives a new inode even within one clock tick).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A password or token: printed as `<redacted>` by `Debug`, readable only through
/// [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a password file. Files written by `echo` end with a newline that is not
/// part of the password; everything else is kept as it is.
pub fn read_password_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// Longer than any IAM token (PKI tokens run to a few KiB); a larger file is a mistake.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Reads and checks a token file: trimmed, non-empty, and made only of characters a
/// header value may hold.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "{} is larger than {} KiB: it should hold the token alone",
            path.display(),
            MAX_TOKEN_BYTES / 1024
        ));
    }
    let token = bytes.trim_ascii();
    if token.is_empty() {
        return Err(format!(
            "{} is empty: write the IAM token (the X-Subject-Token of a token request) into it",
            path.display()
        ));
    }
    if !token.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(format!(
            "{} holds spaces, line breaks or non-ASCII bytes inside the token: it should hold the token alone",
            path.display()
        ));
    }
    // Checked above: printable ASCII only.
    Ok(Secret::new(String::from_utf8_lossy(token).into_owned()))
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// A token file and the token last read from it.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Stamp, Secret)>>,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The current token: the cached one while the file is unchanged, else read anew.
    /// A file that became unreadable is an error, not the old token: a token that
    /// was removed on purpose must stop being used.
    pub fn get(&self) -> Result<Secret, String> {
        let stamp = Stamp::of(&self.path)
            .map_err(|err| format!("cannot read token_file {}: {err}", self.path.display()))?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, token)) = cached.as_ref() {
            if *seen == stamp {
                return Ok(token.clone());
            }
        }
        let token =
            read_token_file(&self.path).map_err(|message| format!("token_file: {message}"))?;
        if cached.is_some() {
            tracing::info!(file = %self.path.display(), "token_file changed: using the new token");
        }
        *cached = Some((stamp, token.clone()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_checked_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  MIIsecret-token\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap().expose(), "MIIsecret-token");
        for bad in [
            "",
            " \n",
            "two words-secret",
            "line\nbreak-secret",
            "caf\u{e9}-secret",
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = read_token_file(&path).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
            assert!(err.contains("token"), "{err}");
        }
        std::fs::write(&path, "a".repeat(MAX_TOKEN_BYTES + 1)).unwrap();
        assert!(read_token_file(&path).unwrap_err().contains("KiB"));
    }

    #[test]
    fn a_rewritten_file_is_read_again_and_a_removed_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first-token").unwrap();
        let file = TokenFile::new(path.clone());
        assert_eq!(file.get().unwrap().expose(), "first-token");
        // An atomic replacement, as token renewers do: new inode, same length.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "other-token").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(file.get().unwrap().expose(), "other-token");
        std::fs::remove_file(&path).unwrap();
        assert!(file.get().unwrap_err().contains("cannot read token_file"));
    }
}
