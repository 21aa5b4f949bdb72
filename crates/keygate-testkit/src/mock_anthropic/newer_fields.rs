//! The Messages API's newer request fields, as its reference describes them: `output_config`
//! (an effort, and a structured output `format`), `context_management` (context editing),
//! `system` turns among the messages (with a per-turn `output_config`), the `display` of
//! thinking, and tools loaded on demand (`defer_loading`).

use serde_json::{Map, Value};

use super::validate::{Checked, boolean, extra_inputs, list, object, optional, string};

const EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];

/// `output_config`: `effort` and `format` at the top level; only `effort` on a system turn.
pub(super) fn output_config(path: &str, value: &Value, top_level: bool) -> Checked {
    let fields = object(path, value)?;
    let known: &[&str] = if top_level {
        &["effort", "format"]
    } else {
        &["effort"]
    };
    extra_inputs(path, fields, known)?;
    optional(fields, path, "effort", |p, v| match v.as_str() {
        Some(effort) if EFFORTS.contains(&effort) => Ok(()),
        _ => Err(format!(
            "{p}: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )),
    })?;
    optional(fields, path, "format", |p, v| {
        let format = object(p, v)?;
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => Ok(()),
            _ => Err(format!("{p}.type: Input should be 'json_schema'")),
        }
    })
}

/// `context_management`: a list of edits, each named by its `type`.
pub(super) fn context_management(path: &str, value: &Value) -> Checked {
    let fields = object(path, value)?;
    extra_inputs(path, fields, &["edits"])?;
    optional(fields, path, "edits", |p, v| {
        list(p, v)?.iter().enumerate().try_for_each(|(n, edit)| {
            let at = format!("{p}.{n}");
            let edit = object(&at, edit)?;
            match edit.get("type").and_then(Value::as_str) {
                Some(kind) if kind.starts_with("clear_") => Ok(()),
                _ => Err(format!(
                    "{at}: Unable to extract tag using discriminator 'type'"
                )),
            }
        })
    })
}

/// A `system` turn: instructions as text (a string or text blocks), a per-turn
/// `output_config`, or both.
pub(super) fn system_turn(path: &str, fields: &Map<String, Value>) -> Checked {
    extra_inputs(path, fields, &["role", "content", "output_config"])?;
    optional(fields, path, "output_config", |p, v| {
        output_config(p, v, false)
    })?;
    match fields.get("content") {
        None | Some(Value::Null) if fields.contains_key("output_config") => Ok(()),
        None | Some(Value::Null) => Err(format!("{path}.content: Field required")),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => blocks.iter().enumerate().try_for_each(|(n, block)| {
            let at = format!("{path}.content.{n}");
            let block = object(&at, block)?;
            if block.get("type").and_then(Value::as_str) != Some("text") {
                return Err(format!("{at}.type: Input should be 'text'"));
            }
            extra_inputs(&at, block, &["type", "text", "cache_control"])?;
            optional(block, &at, "text", string)
        }),
        Some(_) => Err(format!(
            "{path}.content: Input should be a valid string or a valid list of text blocks"
        )),
    }
}

/// Thinking's `display`: whether its text comes back summarized or not at all.
pub(super) fn thinking_display(path: &str, value: &Value) -> Checked {
    match value.as_str() {
        Some("summarized" | "omitted") => Ok(()),
        _ => Err(format!("{path}: Input should be 'summarized' or 'omitted'")),
    }
}

/// A tool's `defer_loading`: loaded only when a tool search finds it.
pub(super) fn defer_loading(path: &str, value: &Value) -> Checked {
    boolean(path, value)
}
