//! The checks the Messages API makes on a request body before it answers. Each failure is the
//! message of a `400 invalid_request_error`, worded like the real API's: the path of the
//! offending field (`messages.1.content.0.type`), then what is wrong with it.

use serde_json::{Map, Value};

use super::newer_fields;

pub(super) type Checked = Result<(), String>;

const TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "output_config",
    "context_management",
];

const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "tool_use",
    "tool_result",
    "document",
    "thinking",
    "redacted_thinking",
];

const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Checks a `POST /v1/messages` body.
pub(super) fn request(body: &Value) -> Checked {
    let fields = object("", body)?;
    extra_inputs("", fields, TOP_LEVEL)?;
    match fields.get("model") {
        None => return Err("model: Field required".to_owned()),
        Some(Value::String(model)) if !model.is_empty() => {}
        Some(Value::String(_)) => {
            return Err("model: String should have at least 1 character".to_owned());
        }
        Some(_) => return Err("model: Input should be a valid string".to_owned()),
    }
    let max_tokens = match fields.get("max_tokens") {
        None => return Err("max_tokens: Field required".to_owned()),
        Some(value) => match value.as_i64() {
            Some(n) if n >= 1 => n,
            Some(_) => {
                return Err("max_tokens: Input should be greater than or equal to 1".to_owned());
            }
            None => return Err("max_tokens: Input should be a valid integer".to_owned()),
        },
    };
    messages(fields.get("messages"))?;
    if let Some(system) = fields.get("system") {
        system_prompt(system)?;
    }
    optional(fields, "", "stream", boolean)?;
    optional(fields, "", "temperature", |path, v| {
        number_in(path, v, 0.0, 1.0)
    })?;
    optional(fields, "", "top_p", |path, v| number_in(path, v, 0.0, 1.0))?;
    optional(fields, "", "top_k", |path, v| match v.as_i64() {
        Some(n) if n >= 0 => Ok(()),
        Some(_) => Err(format!(
            "{path}: Input should be greater than or equal to 0"
        )),
        None => Err(format!("{path}: Input should be a valid integer")),
    })?;
    optional(fields, "", "stop_sequences", |path, v| {
        list(path, v)?
            .iter()
            .enumerate()
            .try_for_each(|(n, item)| string(&format!("{path}.{n}"), item))
    })?;
    optional(fields, "", "metadata", |path, v| {
        let metadata = object(path, v)?;
        extra_inputs(path, metadata, &["user_id"])?;
        optional(metadata, path, "user_id", string)
    })?;
    optional(fields, "", "tools", tools)?;
    optional(fields, "", "tool_choice", tool_choice)?;
    optional(fields, "", "thinking", |path, v| {
        thinking(path, v, max_tokens)
    })?;
    optional(fields, "", "output_config", |path, v| {
        newer_fields::output_config(path, v, true)
    })?;
    optional(
        fields,
        "",
        "context_management",
        newer_fields::context_management,
    )?;
    optional(fields, "", "service_tier", |path, v| match v.as_str() {
        Some("auto" | "standard_only") => Ok(()),
        _ => Err(format!("{path}: Input should be 'auto' or 'standard_only'")),
    })?;
    Ok(())
}

fn messages(value: Option<&Value>) -> Checked {
    let Some(value) = value else {
        return Err("messages: Field required".to_owned());
    };
    let messages = list("messages", value)?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".to_owned());
    }
    for (n, message) in messages.iter().enumerate() {
        self::message(&format!("messages.{n}"), message)?;
    }
    if role(&messages[0]) != "user" {
        return Err("messages: first message must use the \"user\" role".to_owned());
    }
    let last = messages.len() - 1;
    for (n, message) in messages.iter().enumerate() {
        let blocks = match &message["content"] {
            Value::String(text) if text.is_empty() => None,
            Value::Array(blocks) if blocks.is_empty() => None,
            Value::Array(blocks) => Some(blocks.as_slice()),
            _ => Some(&[][..]),
        };
        let Some(blocks) = blocks else {
            if n == last && role(message) == "assistant" {
                continue;
            }
            return Err(format!(
                "messages.{n}: all messages must have non-empty content except for the optional final assistant message"
            ));
        };
        for (b, block) in blocks.iter().enumerate() {
            if block["type"] == "text" && block["text"] == "" {
                return Err(format!(
                    "messages.{n}.content.{b}: text content blocks must be non-empty"
                ));
            }
        }
    }
    tool_pairs(messages)
}

/// A `tool_result` must answer a `tool_use` of the message just before it, and every
/// `tool_use` must be answered in the message just after it (when there is one). A stray
/// result is reported first: it is the more precise of the two when an id is wrong.
fn tool_pairs(messages: &[Value]) -> Checked {
    for (n, message) in messages.iter().enumerate() {
        let results = ids(message, "tool_result", "tool_use_id");
        let asked = match n.checked_sub(1).map(|p| &messages[p]) {
            Some(previous) if role(previous) == "assistant" => ids(previous, "tool_use", "id"),
            _ => Vec::new(),
        };
        if let Some((b, id)) = results
            .iter()
            .find(|(_, id)| !asked.iter().any(|(_, a)| a == id))
        {
            return Err(format!(
                "messages.{n}.content.{b}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            ));
        }
    }
    for (n, message) in messages.iter().enumerate() {
        if role(message) != "assistant" {
            continue;
        }
        let Some(next) = messages.get(n + 1) else {
            continue;
        };
        let answered = ids(next, "tool_result", "tool_use_id");
        let missing: Vec<&str> = ids(message, "tool_use", "id")
            .into_iter()
            .filter(|(_, id)| !answered.iter().any(|(_, a)| a == id))
            .map(|(_, id)| id)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "messages.{n}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

fn role(message: &Value) -> &str {
    message["role"].as_str().unwrap_or_default()
}

/// `(block index, id)` of the blocks of `kind` in a message, read from their field `key`.
fn ids<'a>(message: &'a Value, kind: &str, key: &str) -> Vec<(usize, &'a str)> {
    message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, block)| block["type"] == kind)
        .filter_map(|(b, block)| block[key].as_str().map(|id| (b, id)))
        .collect()
}

fn message(path: &str, value: &Value) -> Checked {
    let fields = object(path, value)?;
    match fields.get("role").map(|role| role.as_str()) {
        None => return Err(format!("{path}.role: Field required")),
        Some(Some("user" | "assistant")) => {}
        Some(Some("system")) => return newer_fields::system_turn(path, fields),
        Some(_) => {
            return Err(format!(
                "{path}.role: Input should be 'user' or 'assistant'"
            ));
        }
    }
    extra_inputs(path, fields, &["role", "content"])?;
    match fields.get("content") {
        None => Err(format!("{path}.content: Field required")),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .try_for_each(|(n, b)| block(&format!("{path}.content.{n}"), b, BLOCK_TYPES)),
        Some(_) => Err(format!(
            "{path}.content: Input should be a valid string or a valid list of content blocks"
        )),
    }
}

/// One content block, whose `type` must be one of `allowed`.
fn block(path: &str, value: &Value, allowed: &[&str]) -> Checked {
    let fields = object(path, value)?;
    let Some(kind) = fields.get("type").and_then(Value::as_str) else {
        return Err(format!(
            "{path}: Unable to extract tag using discriminator 'type'"
        ));
    };
    if !allowed.contains(&kind) {
        let expected: Vec<String> = allowed.iter().map(|t| format!("'{t}'")).collect();
        return Err(format!(
            "{path}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: {}",
            expected.join(", ")
        ));
    }
    match kind {
        "text" => {
            extra_inputs(
                path,
                fields,
                &["type", "text", "cache_control", "citations"],
            )?;
            required(fields, path, "text", string)
        }
        "image" => {
            extra_inputs(path, fields, &["type", "source", "cache_control"])?;
            required(fields, path, "source", image_source)
        }
        "tool_use" => {
            extra_inputs(
                path,
                fields,
                &["type", "id", "name", "input", "cache_control"],
            )?;
            required(fields, path, "id", string)?;
            required(fields, path, "name", string)?;
            required(fields, path, "input", |p, v| object(p, v).map(drop))
        }
        "tool_result" => {
            let known = [
                "type",
                "tool_use_id",
                "content",
                "is_error",
                "cache_control",
            ];
            extra_inputs(path, fields, &known)?;
            required(fields, path, "tool_use_id", string)?;
            optional(fields, path, "is_error", boolean)?;
            optional(fields, path, "content", |content, v| match v {
                Value::String(_) => Ok(()),
                Value::Array(blocks) => blocks.iter().enumerate().try_for_each(|(n, b)| {
                    let inner = ["text", "image", "document", "search_result"];
                    block(&format!("{content}.{n}"), b, &inner)
                }),
                _ => Err(format!(
                    "{content}: Input should be a valid string or a valid list"
                )),
            })
        }
        "document" => {
            let known = [
                "type",
                "source",
                "title",
                "context",
                "citations",
                "cache_control",
            ];
            extra_inputs(path, fields, &known)?;
            required(fields, path, "source", |p, v| object(p, v).map(drop))
        }
        "thinking" => {
            extra_inputs(path, fields, &["type", "thinking", "signature"])?;
            required(fields, path, "thinking", string)?;
            required(fields, path, "signature", string)
        }
        "redacted_thinking" => {
            extra_inputs(path, fields, &["type", "data"])?;
            required(fields, path, "data", string)
        }
        // Blocks only found inside tool results: their type is enough here.
        _ => Ok(()),
    }
}

/// `{type: base64, media_type, data}` or `{type: url, url}`.
fn image_source(path: &str, value: &Value) -> Checked {
    let fields = object(path, value)?;
    match fields.get("type").and_then(Value::as_str) {
        Some("base64") => {
            extra_inputs(path, fields, &["type", "media_type", "data"])?;
            required(fields, path, "media_type", |p, v| match v.as_str() {
                Some(media) if IMAGE_TYPES.contains(&media) => Ok(()),
                _ => Err(format!(
                    "{p}: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                )),
            })?;
            required(fields, path, "data", string)
        }
        Some("url") => {
            extra_inputs(path, fields, &["type", "url"])?;
            required(fields, path, "url", string)
        }
        Some(other) => Err(format!(
            "{path}.type: Input tag '{other}' found using 'type' does not match any of the expected tags: 'base64', 'url'"
        )),
        None => Err(format!(
            "{path}: Unable to extract tag using discriminator 'type'"
        )),
    }
}

/// A string, or a list of text blocks.
fn system_prompt(value: &Value) -> Checked {
    match value {
        Value::String(_) => Ok(()),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .try_for_each(|(n, b)| block(&format!("system.{n}"), b, &["text"])),
        _ => {
            Err("system: Input should be a valid string or a valid list of text blocks".to_owned())
        }
    }
}

fn tools(path: &str, value: &Value) -> Checked {
    let tools = list(path, value)?;
    let mut names = Vec::new();
    for (n, tool) in tools.iter().enumerate() {
        let path = format!("{path}.{n}");
        let fields = object(&path, tool)?;
        required(fields, &path, "name", string)?;
        match fields.get("type").and_then(Value::as_str) {
            None | Some("custom") => {
                let known = [
                    "type",
                    "name",
                    "description",
                    "input_schema",
                    "cache_control",
                    "defer_loading",
                ];
                extra_inputs(&path, fields, &known)?;
                optional(fields, &path, "defer_loading", newer_fields::defer_loading)?;
                optional(fields, &path, "description", string)?;
                required(fields, &path, "input_schema", |p, v| {
                    let schema = object(p, v)?;
                    match schema.get("type") {
                        Some(Value::String(kind)) if kind == "object" => Ok(()),
                        None => Err(format!("{p}.type: Field required")),
                        Some(_) => Err(format!("{p}.type: Input should be 'object'")),
                    }
                })?;
            }
            // Server tools (web search, code execution, ...) carry their own settings.
            Some(_) => {}
        }
        let name = fields["name"].as_str().unwrap_or_default();
        if names.contains(&name) {
            return Err("tools: Tool names must be unique.".to_owned());
        }
        names.push(name);
    }
    Ok(())
}

fn tool_choice(path: &str, value: &Value) -> Checked {
    let fields = object(path, value)?;
    match fields.get("type").and_then(Value::as_str) {
        Some("auto" | "any" | "none") => {
            extra_inputs(path, fields, &["type", "disable_parallel_tool_use"])
        }
        Some("tool") => {
            extra_inputs(path, fields, &["type", "name", "disable_parallel_tool_use"])?;
            required(fields, path, "name", string)
        }
        Some(other) => Err(format!(
            "{path}.type: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        )),
        None => Err(format!(
            "{path}: Unable to extract tag using discriminator 'type'"
        )),
    }
}

fn thinking(path: &str, value: &Value, max_tokens: i64) -> Checked {
    let fields = object(path, value)?;
    match fields.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            extra_inputs(path, fields, &["type", "budget_tokens", "display"])?;
            optional(fields, path, "display", newer_fields::thinking_display)?;
            let budget = match fields.get("budget_tokens").map(Value::as_i64) {
                None => return Err(format!("{path}.enabled.budget_tokens: Field required")),
                Some(Some(budget)) if budget >= 1024 => budget,
                Some(Some(_)) => {
                    return Err(format!(
                        "{path}.enabled.budget_tokens: Input should be greater than or equal to 1024"
                    ));
                }
                Some(None) => {
                    return Err(format!(
                        "{path}.enabled.budget_tokens: Input should be a valid integer"
                    ));
                }
            };
            if max_tokens <= budget {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`".to_owned());
            }
            Ok(())
        }
        Some("adaptive") => {
            extra_inputs(path, fields, &["type", "display"])?;
            optional(fields, path, "display", newer_fields::thinking_display)
        }
        Some("disabled") => extra_inputs(path, fields, &["type"]),
        Some(other) => Err(format!(
            "{path}.type: Input tag '{other}' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
        )),
        None => Err(format!(
            "{path}: Unable to extract tag using discriminator 'type'"
        )),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

pub(super) fn object<'a>(path: &str, value: &'a Value) -> Result<&'a Map<String, Value>, String> {
    value.as_object().ok_or_else(|| {
        let path = if path.is_empty() { "body" } else { path };
        format!("{path}: Input should be a valid dictionary")
    })
}

pub(super) fn list<'a>(path: &str, value: &'a Value) -> Result<&'a [Value], String> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{path}: Input should be a valid list"))
}

pub(super) fn string(path: &str, value: &Value) -> Checked {
    match value {
        Value::String(_) => Ok(()),
        _ => Err(format!("{path}: Input should be a valid string")),
    }
}

pub(super) fn boolean(path: &str, value: &Value) -> Checked {
    match value {
        Value::Bool(_) => Ok(()),
        _ => Err(format!("{path}: Input should be a valid boolean")),
    }
}

fn number_in(path: &str, value: &Value, min: f64, max: f64) -> Checked {
    match value.as_f64() {
        Some(x) if x < min => Err(format!(
            "{path}: Input should be greater than or equal to {min}"
        )),
        Some(x) if x > max => Err(format!(
            "{path}: Input should be less than or equal to {max}"
        )),
        Some(_) => Ok(()),
        None => Err(format!("{path}: Input should be a valid number")),
    }
}

/// The real API rejects fields it does not know ("Extra inputs are not permitted").
pub(super) fn extra_inputs(path: &str, fields: &Map<String, Value>, known: &[&str]) -> Checked {
    match fields.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "{}: Extra inputs are not permitted",
            join(path, key)
        )),
        None => Ok(()),
    }
}

/// Checks field `name` of the object at `path`, which must be there.
fn required(
    fields: &Map<String, Value>,
    path: &str,
    name: &str,
    check: impl FnOnce(&str, &Value) -> Checked,
) -> Checked {
    let path = join(path, name);
    match fields.get(name) {
        Some(value) => check(&path, value),
        None => Err(format!("{path}: Field required")),
    }
}

/// Checks field `name` of the object at `path` when it is there and not `null`.
pub(super) fn optional(
    fields: &Map<String, Value>,
    path: &str,
    name: &str,
    check: impl FnOnce(&str, &Value) -> Checked,
) -> Checked {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(value) => check(&join(path, name), value),
    }
}
