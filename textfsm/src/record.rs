//! What a parse produces: values, tables (one template) and records (named values).

use serde::ser::{Serialize, SerializeMap, Serializer};

/// One parsed value: a string, or a list of strings for a `List` value — the types Python
/// textfsm and `ntc_templates.parse.parse_output` give.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A single value (empty when nothing matched).
    String(String),
    /// A `List` value's matches, in order.
    List(Vec<String>),
}

impl Value {
    /// The string, or `None` for a list.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::List(_) => None,
        }
    }

    /// Python truthiness: a non-empty string or list.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }
}

/// The rows of one template run: one column per `Value`, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The `Value` names, as declared.
    pub header: Vec<String>,
    /// One row per record, each as long as the header.
    pub rows: Vec<Vec<Value>>,
}

/// One record: `(key, value)` pairs in the template's `Value` order. Keys are the `Value`
/// names lower-cased, as `ntc_templates.parse.parse_output` returns them. Serializes as a
/// JSON object in that order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record(pub Vec<(String, Value)>);

impl Record {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing value in place (like a Python dict).
    pub fn insert(&mut self, key: String, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The `(key, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Table {
    /// The rows as records with lower-cased keys (`parse_output`'s dicts).
    pub fn into_records(self) -> Vec<Record> {
        let keys: Vec<String> = self.header.iter().map(|h| h.to_lowercase()).collect();
        self.rows
            .into_iter()
            .map(|row| {
                let mut r = Record(Vec::with_capacity(row.len()));
                for (k, v) in keys.iter().zip(row) {
                    r.insert(k.clone(), v);
                }
                r
            })
            .collect()
    }
}
