//! Which keys a target may have, read from the settings types themselves.
//!
//! A target is its common keys plus its kind's own. serde cannot refuse unknown keys
//! of a struct that flattens another, so [`RawTarget`] is deserialized by hand: the
//! common keys into their fields, any key that some kind accepts into a mapping that
//! the kind's module deserializes (with `deny_unknown_fields`) after `kind` is known,
//! and any other key refused on the spot, with serde's own line and column. The keys
//! each kind accepts are not listed anywhere: [`fields_of`] reads them from the kind's
//! `#[derive(Deserialize)]` struct, so a new setting is a new field and nothing else.

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// The field names a derived `Deserialize` struct accepts (its `deserialize_struct`
/// call carries them). Only for structs without `flatten`, which would hide them.
pub fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut spy = FieldSpy(&[]);
    // The spy always fails after recording the fields: the error is expected.
    let _ = T::deserialize(&mut spy);
    spy.0
}

/// A deserializer that records the field list of the struct asked of it.
struct FieldSpy(&'static [&'static str]);

#[derive(Debug)]
struct SpyDone;

impl fmt::Display for SpyDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for SpyDone {}

impl de::Error for SpyDone {
    fn custom<M: fmt::Display>(_: M) -> Self {
        SpyDone
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldSpy {
    type Error = SpyDone;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, SpyDone> {
        Err(SpyDone)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, SpyDone> {
        self.0 = fields;
        Err(SpyDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A target as written, before its kind's settings are read.
#[derive(Debug)]
pub struct RawTarget {
    pub name: String,
    /// One of the registered kinds' names.
    pub kind: &'static str,
    pub labels: BTreeMap<String, String>,
    pub collect_interval: Option<String>,
    pub collect_timeout: Option<String>,
    pub max_series_per_dimension: Option<usize>,
    /// The keys of some kind, as written, in file order; the kind's module reads them.
    pub settings: serde_yaml::Mapping,
}

/// The keys every target has, whatever its kind.
const COMMON: [&str; 6] = [
    "name",
    "kind",
    "labels",
    "collect_interval",
    "collect_timeout",
    "max_series_per_dimension",
];

/// The registered kinds, their names, and every key any target accepts (for serde's
/// "expected one of" list), computed once.
struct Known {
    names: Vec<&'static str>,
    all_keys: Vec<&'static str>,
    kind_keys: Vec<&'static str>,
}

fn known() -> &'static Known {
    static KNOWN: OnceLock<Known> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let kinds = super::KINDS;
        let mut kind_keys: Vec<&'static str> = Vec::new();
        for kind in kinds {
            for key in (kind.keys)() {
                if !kind_keys.contains(&key) {
                    kind_keys.push(key);
                }
            }
        }
        let mut all_keys: Vec<&'static str> = COMMON.to_vec();
        all_keys.extend(&kind_keys);
        Known {
            names: kinds.iter().map(|k| k.name).collect(),
            all_keys,
            kind_keys,
        }
    })
}

/// The names of the kinds that accept `key`.
pub fn kinds_accepting(key: &str) -> Vec<&'static str> {
    super::KINDS
        .iter()
        .filter(|kind| (kind.keys)().contains(&key))
        .map(|kind| kind.name)
        .collect()
}

enum Key {
    Common(&'static str),
    OfSomeKind(String),
}

/// Reads a key; one no kind accepts is refused here, so serde places the error on it.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a target key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        if let Some(common) = COMMON.iter().find(|c| **c == key) {
            return Ok(Key::Common(common));
        }
        let known = known();
        if known.kind_keys.contains(&key) {
            return Ok(Key::OfSomeKind(key.to_string()));
        }
        Err(E::unknown_field(key, &known.all_keys))
    }
}

/// Reads `kind:`; an unknown one is refused on its value, listing the kinds.
struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = &'static str;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<&'static str, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KindSeed {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a kind of target")
    }

    fn visit_str<E: de::Error>(self, kind: &str) -> Result<&'static str, E> {
        let names = &known().names;
        names
            .iter()
            .find(|name| **name == kind)
            .copied()
            .ok_or_else(|| E::unknown_variant(kind, names))
    }
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TargetVisitor)
    }
}

struct TargetVisitor;

impl<'de> Visitor<'de> for TargetVisitor {
    type Value = RawTarget;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a target (name, kind and its settings)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTarget, A::Error> {
        let mut name: Option<String> = None;
        let mut kind: Option<&'static str> = None;
        let mut labels: Option<BTreeMap<String, String>> = None;
        let mut collect_interval: Option<Option<String>> = None;
        let mut collect_timeout: Option<Option<String>> = None;
        let mut max_series: Option<Option<usize>> = None;
        let mut settings = serde_yaml::Mapping::new();
        fn once<T, E: de::Error>(
            slot: &mut Option<T>,
            key: &'static str,
            value: T,
        ) -> Result<(), E> {
            match slot {
                Some(_) => Err(E::duplicate_field(key)),
                None => {
                    *slot = Some(value);
                    Ok(())
                }
            }
        }
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Common("name") => once(&mut name, "name", map.next_value()?)?,
                Key::Common("kind") => once(&mut kind, "kind", map.next_value_seed(KindSeed)?)?,
                Key::Common("labels") => once(&mut labels, "labels", map.next_value()?)?,
                Key::Common("collect_interval") => {
                    once(&mut collect_interval, "collect_interval", map.next_value()?)?
                }
                Key::Common("collect_timeout") => {
                    once(&mut collect_timeout, "collect_timeout", map.next_value()?)?
                }
                Key::Common(key) => once(&mut max_series, key, map.next_value()?)?,
                Key::OfSomeKind(key) => {
                    let value: serde_yaml::Value = map.next_value()?;
                    let key = serde_yaml::Value::String(key);
                    if settings.contains_key(&key) {
                        let text = key.as_str().unwrap_or_default().to_string();
                        return Err(de::Error::custom(format_args!("duplicate field `{text}`")));
                    }
                    settings.insert(key, value);
                }
            }
        }
        Ok(RawTarget {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            labels: labels.unwrap_or_default(),
            collect_interval: collect_interval.flatten(),
            collect_timeout: collect_timeout.flatten(),
            max_series_per_dimension: max_series.flatten(),
            settings,
        })
    }
}

/// Deserializes a kind's settings struct from its keys. On failure: the key that
/// failed (when serde names one) and serde's message.
pub fn settings_of<T: for<'de> Deserialize<'de>>(
    settings: serde_yaml::Mapping,
) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(serde_yaml::Value::Mapping(settings)).map_err(|err| {
        let path = err.path().to_string();
        let key = (path != ".").then_some(path);
        (key, err.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        alpha: Option<u8>,
        #[serde(rename = "beta_key")]
        beta: String,
    }

    #[test]
    fn fields_are_read_from_the_derive() {
        assert_eq!(fields_of::<Example>(), ["alpha", "beta_key"]);
    }

    #[test]
    fn settings_errors_name_their_key() {
        let mut m = serde_yaml::Mapping::new();
        m.insert("beta_key".into(), serde_yaml::Value::Sequence(vec![]));
        let (key, message) = settings_of::<Example>(m).unwrap_err();
        assert_eq!(key.as_deref(), Some("beta_key"));
        assert!(message.contains("invalid type"), "{message}");
    }
}
