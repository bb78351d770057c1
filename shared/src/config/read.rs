//! Reading `p1.yml` so that one run reports every mistake in the file, not the first.
//!
//! A file that deserializes cleanly takes the direct path (serde over the text, exactly as written). Only a file
//! with a mistake takes the slow path here: it is parsed into a generic YAML [`Value`] (a syntax error stops there,
//! with its line and column), walked against the schema (the serialized defaults) to report every unknown key with
//! its full path and the nearest valid name, and deserialized again and again, each wrongly typed value reported and
//! dropped (its default takes its place) until the rest deserializes. The resulting [`RawConfig`] carries the
//! problems in [`RawConfig::file_errors`]; [`RawConfig::validate`] reports them together with every bad value, so
//! one `--check-config` lists everything.

use serde_norway::{Mapping, Value};

use super::{ConfigError, FieldError, RawConfig};

/// At most this many deserialization rounds (each one drops or converts a value); a file is never that wrong.
const MAX_ROUNDS: usize = 1000;

/// The slow path of [`RawConfig::from_yaml`]: every unknown key and every wrongly typed value, collected.
pub(super) fn collect(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    let mut value: Value = serde_norway::from_str(text).map_err(|e| syntax(origin, &e))?;
    let schema = schema();
    let mut errors = Vec::new();
    match &mut value {
        Value::Null => return Ok(RawConfig::default()),
        Value::Mapping(map) => {
            let mut known = Vec::new();
            known_paths(&schema, "", &mut known);
            unknown_keys(map, &schema, "", &known, &mut errors);
        }
        other => {
            return Err(ConfigError::Syntax {
                origin: origin.to_owned(),
                line: 1,
                column: 1,
                message: format!("expected settings (`key: value` lines), found {}", show(other)),
            })
        }
    }
    let mut raw = typed(value, &schema, &mut errors)?;
    raw.file_errors = errors;
    Ok(raw)
}

/// A YAML syntax error, with its line and column when the parser gave them.
pub(super) fn syntax(origin: &str, e: &serde_norway::Error) -> ConfigError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    // libyaml's text repeats the position ("... at line 3 column 5"); the prefix already says it.
    let message = e.to_string().replace(&format!(" at line {line} column {column}"), "");
    ConfigError::Syntax { origin: origin.to_owned(), line, column, message }
}

/// Every key with its default: the shape a file is checked against.
fn schema() -> Value {
    // Serializing plain structs of strings, numbers and lists cannot fail; `Null` (no known keys) would be noticed
    // at once by the tests.
    serde_norway::to_value(RawConfig::default()).unwrap_or(Value::Null)
}

/// Every dotted path the schema knows, sections included.
fn known_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Mapping(map) = schema {
        for (key, child) in map {
            if let Value::String(key) = key {
                let path = join(prefix, key);
                known_paths(child, &path, out);
                out.push(path);
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Reports and removes every key of `map` the schema does not know, recursing into known sections. A section left
/// empty (`reader:` with every line below commented out) counts as an empty section.
fn unknown_keys(map: &mut Mapping, schema: &Value, prefix: &str, known: &[String], errors: &mut Vec<FieldError>) {
    let Value::Mapping(expected) = schema else { return };
    let mut unknown = Vec::new();
    for (key, child) in map.iter_mut() {
        let Some(name) = key.as_str().filter(|k| expected.contains_key(*k)) else {
            unknown.push(key.clone());
            continue;
        };
        let Some(child_schema) = expected.get(name) else { continue };
        if child_schema.is_mapping() {
            if child.is_null() {
                *child = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(child) = child {
                unknown_keys(child, child_schema, &join(prefix, name), known, errors);
            }
        }
    }
    for key in unknown {
        let name = key.as_str().map_or_else(|| show(&key), str::to_owned);
        let path = join(prefix, &name);
        let value = map.shift_remove(&key).map(|v| show(&v)).unwrap_or_default();
        let siblings: Vec<&str> = expected.keys().filter_map(Value::as_str).collect();
        let allowed = match suggest(&name, prefix, &siblings, known) {
            Some(near) => format!("did you mean `{near}`?"),
            None if prefix.is_empty() => format!("the top-level settings are {}", siblings.join(", ")),
            None => format!("the settings under `{prefix}:` are {}", siblings.join(", ")),
        };
        errors.push(FieldError { key: path, value, allowed, unknown: true });
    }
}

/// The nearest valid name for `name` (under `prefix`): a sibling first, then the same name in another section.
fn suggest(name: &str, prefix: &str, siblings: &[&str], known: &[String]) -> Option<String> {
    let wanted = normalise(name);
    let limit = (wanted.chars().count() / 3).max(1);
    let best = siblings
        .iter()
        .map(|s| (distance(&wanted, &normalise(s)), *s))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d);
    if let Some((_, sibling)) = best {
        return Some(join(prefix, sibling));
    }
    known
        .iter()
        .map(|path| (distance(&wanted, &normalise(path.rsplit('.').next().unwrap_or(path))), path))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, path)| path.clone())
}

/// Case and `-`/`_` do not count as typos worth more than one edit: `Interval-Minutes` is `interval_minutes`.
fn normalise(name: &str) -> String {
    name.trim().to_lowercase().replace('-', "_")
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours each cost 1.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// One step of a path into a YAML value.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes `value`, reporting and dropping each wrongly typed value until the rest deserializes.
///
/// A number or `true`/`false` where text is wanted (`name: 1234`) is text, as it is on the direct path: it is
/// converted once and tried again before it counts as a mistake.
fn typed(mut value: Value, schema: &Value, errors: &mut Vec<FieldError>) -> Result<RawConfig, ConfigError> {
    let as_written = value.clone();
    let mut converted: Vec<Vec<Step>> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let e = match serde_path_to_error::deserialize::<_, RawConfig>(value.clone()) {
            Ok(raw) => return Ok(raw),
            Err(e) => e,
        };
        let steps: Vec<Step> = e
            .path()
            .iter()
            .map_while(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                _ => None,
            })
            .collect();
        if let Some(node @ (Value::Number(_) | Value::Bool(_))) = at(&mut value, &steps) {
            if !converted.contains(&steps) {
                *node = Value::String(show(node));
                converted.push(steps);
                continue;
            }
        }
        // The value is dropped whole from the nearest key up (a bad list item drops the list), so its default
        // takes its place.
        let keys: Vec<String> = steps
            .iter()
            .map_while(|s| match s {
                Step::Key(k) => Some(k.clone()),
                Step::Index(_) => None,
            })
            .collect();
        let key = keys.join(".");
        let serde_message = e.into_inner().to_string();
        let dropped = keys.split_last().and_then(|(last, parents)| {
            let parents: Vec<Step> = parents.iter().cloned().map(Step::Key).collect();
            match at(&mut value, &parents) {
                Some(Value::Mapping(parent)) => parent.shift_remove(last.as_str()),
                _ => None,
            }
        });
        if dropped.is_none() {
            // Nothing to drop (serde named no key): report serde's words and stop.
            errors.push(FieldError { key, value: String::new(), allowed: serde_message, unknown: false });
            return Err(ConfigError::Invalid(std::mem::take(errors)));
        }
        let written = keys.iter().try_fold(&as_written, |node, k| node.get(k.as_str()));
        errors.push(FieldError {
            value: written.map(show).unwrap_or_default(),
            allowed: expected(schema, &keys, &serde_message),
            key,
            unknown: false,
        });
    }
    // Each round drops or converts one value, so only a file with more than MAX_ROUNDS mistakes gets here.
    Err(ConfigError::Invalid(std::mem::take(errors)))
}

/// The node at `steps`, if there is one.
fn at<'v>(value: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(value, |node, step| match (step, node) {
        (Step::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str()),
        (Step::Index(i), Value::Sequence(s)) => s.get_mut(*i),
        _ => None,
    })
}

/// What the key at `keys` wants, said from its default; serde's own words only when the schema has no example.
fn expected(schema: &Value, keys: &[String], serde_message: &str) -> String {
    let default = keys.iter().try_fold(schema, |node, k| node.get(k.as_str()));
    match default {
        Some(Value::Bool(b)) => format!("true or false (default {b})"),
        Some(Value::Number(n)) => format!("a whole number of 0 or more (default {n})"),
        Some(Value::String(s)) => format!("a single value such as {s} (the default)"),
        Some(Value::Sequence(s)) => format!("a list such as {}", show(&Value::Sequence(s.clone()))),
        Some(Value::Mapping(_)) => format!("a section: `{}:` followed by indented `key: value` lines", keys.join(".")),
        Some(Value::Null) => "a single value, or nothing".to_owned(),
        _ => serde_message.to_owned(),
    }
}

/// A value as a user would write it on one line: `7`, `lots`, `[a, b]`, `{a: 1}`.
fn show(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Mapping(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("{}: {}", show(k), show(v))).collect::<Vec<_>>().join(", ")
        ),
        Value::Tagged(t) => format!("{} {}", t.tag, show(&t.value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits_and_swaps() {
        assert_eq!(distance("compres", "compress"), 1);
        assert_eq!(distance("gruop", "group"), 1);
        assert_eq!(distance("ttl", "ttl"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_schema_knows_every_section_and_key() {
        let mut known = Vec::new();
        known_paths(&schema(), "", &mut known);
        for path in ["name", "timezone", "multicast", "multicast.ttl", "listener.raw_tcp", "reader.compress"] {
            assert!(known.iter().any(|k| k == path), "{path} missing from {known:?}");
        }
        assert!(!known.iter().any(|k| k.contains("file_errors")), "{known:?}");
    }

    #[test]
    fn suggestions_prefer_siblings_then_other_sections() {
        let mut known = Vec::new();
        known_paths(&schema(), "", &mut known);
        let reader = ["dir", "details", "compress", "interval_minutes"];
        assert_eq!(suggest("compres", "reader", &reader, &known).as_deref(), Some("reader.compress"));
        assert_eq!(suggest("Interval-Minutes", "reader", &reader, &known).as_deref(), Some("reader.interval_minutes"));
        assert_eq!(suggest("interface", "", &["name", "timezone"], &known).as_deref(), Some("multicast.interface"));
        assert_eq!(suggest("colour", "reader", &reader, &known), None);
    }

    #[test]
    fn values_show_as_written() {
        let v: Value = serde_norway::from_str("[a, 1, {b: true}]").expect("yaml");
        assert_eq!(show(&v), "[a, 1, {b: true}]");
    }
}
