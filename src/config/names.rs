//! What names and values written in the file may be: target and label names, and
//! `${VARIABLE}` references to the environment.

use crate::secret::Secret;

/// Replaces `${NAME}` with the environment variable's value. The error names the
/// variable, never a value.
pub(super) fn expand_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or("has `${` without a closing `}`: write ${VARIABLE}")?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            format!("refers to the environment variable {name}, which is not set: set it, or use password_file")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Secret::new(out))
}

/// A target name: it is a label value and a path segment of the session API.
pub(super) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A Prometheus label name, not one of its reserved `__` names.
pub(super) fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with("__")
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
