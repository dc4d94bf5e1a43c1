//! Recording keys: the standard ones of the data model and any user keys.
//!
//! A recording carries keys that become catalogue columns. The standard keys have fixed
//! types: `model`, `group`, `task`, `condition` are strings, `seed` and `checkpoint` are
//! 64-bit integers, `progress` is a float in `[0, 1]` (fraction of training). User keys
//! (hyper-parameters and anything else) are strings, integers or floats; a user-key column
//! that mixes integers and floats is stored as float, and one that mixes numbers and
//! strings is stored as string (numbers written in their shortest exact form).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// One key value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Str(String),
}

impl KeyValue {
    /// Parse a value written on the command line or in a path: an integer if it reads as
    /// one, else a float if it reads as one (finite), else the string itself.
    pub fn infer(text: &str) -> KeyValue {
        let t = text.trim();
        if let Ok(i) = t.parse::<i64>() {
            return KeyValue::Int(i);
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() && !t.is_empty() && !t.eq_ignore_ascii_case("nan") => KeyValue::Float(f),
            _ => KeyValue::Str(text.to_string()),
        }
    }

    /// The value as text (shortest exact form for numbers).
    pub fn to_text(&self) -> String {
        match self {
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Float(f) => format!("{f}"),
            KeyValue::Str(s) => s.clone(),
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            KeyValue::Int(i) => Some(*i as f64),
            KeyValue::Float(f) => Some(*f),
            KeyValue::Str(_) => None,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The keys of one recording, by name (sorted, so that their JSON form is canonical).
pub type Keys = BTreeMap<String, KeyValue>;

/// The type of a catalogue key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Int64 column.
    Int,
    /// Float64 column.
    Float,
    /// Utf8 column.
    Str,
}

impl KeyType {
    /// The type of one value.
    pub fn of(v: &KeyValue) -> KeyType {
        match v {
            KeyValue::Int(_) => KeyType::Int,
            KeyValue::Float(_) => KeyType::Float,
            KeyValue::Str(_) => KeyType::Str,
        }
    }

    /// The column type that holds values of both types (int + float = float; anything
    /// with a string = string).
    pub fn unify(self, other: KeyType) -> KeyType {
        use KeyType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            _ => Str,
        }
    }
}

/// The standard keys of the data model and their column types, in catalogue order.
pub const STANDARD_KEYS: [(&str, KeyType); 7] = [
    ("model", KeyType::Str),
    ("group", KeyType::Str),
    ("seed", KeyType::Int),
    ("checkpoint", KeyType::Int),
    ("progress", KeyType::Float),
    ("task", KeyType::Str),
    ("condition", KeyType::Str),
];

/// Catalogue columns that are not keys; a key may not take these names.
pub const RESERVED_COLUMNS: [&str; 9] =
    ["id", "hash", "file", "source", "dtype", "n_trials", "n_time", "n_units", "ingested_at"];

/// The fixed type of a standard key, `None` for a user key.
pub fn standard_type(name: &str) -> Option<KeyType> {
    STANDARD_KEYS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Check a key name: an identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters) that
/// is not a reserved catalogue column.
pub fn check_key_name(name: &str) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let ok_start = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 64 {
        return Err(StoreError::Key {
            key: name.to_string(),
            detail: "a key name must be a letter or '_' followed by letters, digits or '_' (at most 64 characters)"
                .into(),
        });
    }
    if RESERVED_COLUMNS.contains(&name) {
        return Err(StoreError::Key {
            key: name.to_string(),
            detail: format!(
                "is a catalogue column dynsim fills itself ({}); rename the key",
                RESERVED_COLUMNS.join(", ")
            ),
        });
    }
    Ok(())
}

/// Turn an arbitrary name (an HDF5 attribute name, a column name) into a valid key name,
/// or `None` when nothing usable is left. Reserved names get the prefix `attr_`.
pub fn sanitise_key_name(name: &str) -> Option<String> {
    let mut out: String =
        name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.len() > 64 || out.chars().all(|c| c == '_') {
        return None;
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if RESERVED_COLUMNS.contains(&out.as_str()) {
        out.insert_str(0, "attr_");
    }
    Some(out)
}

/// Bring a value to the type its key requires: standard keys are converted (e.g. the text
/// `"100"` from a layout pattern becomes the checkpoint `100`) or rejected with a message;
/// user keys keep their inferred type. `progress` must lie in `[0, 1]`.
pub fn normalise(name: &str, value: KeyValue) -> Result<KeyValue, StoreError> {
    check_key_name(name)?;
    let err = |detail: String| StoreError::Key { key: name.to_string(), detail };
    let Some(ty) = standard_type(name) else {
        return match value {
            KeyValue::Float(f) if !f.is_finite() => Err(err(format!("value {f} is not finite"))),
            v => Ok(v),
        };
    };
    match (ty, value) {
        (KeyType::Str, v) => Ok(KeyValue::Str(v.to_text())),
        (KeyType::Int, KeyValue::Int(i)) => Ok(KeyValue::Int(i)),
        (KeyType::Int, KeyValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(KeyValue::Int(f as i64)),
        (KeyType::Int, v) => match KeyValue::infer(&v.to_text()) {
            KeyValue::Int(i) => Ok(KeyValue::Int(i)),
            _ => Err(err(format!("must be an integer, got {:?}", v.to_text()))),
        },
        (KeyType::Float, v) => {
            let f = match &v {
                KeyValue::Str(s) => KeyValue::infer(s).as_f64(),
                other => other.as_f64(),
            };
            match f {
                Some(f) if (0.0..=1.0).contains(&f) => Ok(KeyValue::Float(f)),
                Some(f) => Err(err(format!("is the fraction of training done and must lie in [0, 1], got {f}"))),
                None => Err(err(format!("must be a number in [0, 1], got {:?}", v.to_text()))),
            }
        }
    }
}

/// Parse `k=v` (as given to `--key`) into a normalised key and value.
pub fn parse_assignment(text: &str) -> Result<(String, KeyValue), StoreError> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(StoreError::Key {
            key: text.to_string(),
            detail: "expected NAME=VALUE, e.g. --key group=pretrained".into(),
        });
    };
    let name = k.trim().to_string();
    let value = normalise(&name, KeyValue::infer(v))?;
    Ok((name, value))
}

/// The canonical JSON of a key map (sorted names, no spaces).
pub fn canonical_json(keys: &Keys) -> String {
    serde_json::to_string(keys).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_keys_are_converted_or_rejected() {
        assert_eq!(normalise("checkpoint", KeyValue::Str("100".into())).ok(), Some(KeyValue::Int(100)));
        assert_eq!(normalise("group", KeyValue::Int(3)).ok(), Some(KeyValue::Str("3".into())));
        assert_eq!(normalise("progress", KeyValue::Int(1)).ok(), Some(KeyValue::Float(1.0)));
        assert!(normalise("progress", KeyValue::Float(1.5)).is_err());
        assert!(normalise("checkpoint", KeyValue::Str("last".into())).is_err());
        assert!(normalise("id", KeyValue::Int(1)).is_err());
        assert!(normalise("bad name", KeyValue::Int(1)).is_err());
        assert_eq!(KeyValue::infer("1e-3"), KeyValue::Float(1e-3));
        assert_eq!(KeyValue::infer("nan"), KeyValue::Str("nan".into()));
        assert_eq!(sanitise_key_name("learning rate").as_deref(), Some("learning_rate"));
        assert_eq!(sanitise_key_name("id").as_deref(), Some("attr_id"));
        assert_eq!(KeyType::Int.unify(KeyType::Float), KeyType::Float);
        assert_eq!(KeyType::Int.unify(KeyType::Str), KeyType::Str);
    }
}
