//! Readers for fields of a JSON request, each naming the field when it is malformed.

use serde_json::{Map, Value};

use super::TranslateError;

pub(crate) type Obj = Map<String, Value>;

/// Parses a body that must be a JSON object.
pub(crate) fn object(body: &[u8]) -> Result<Obj, TranslateError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TranslateError::invalid("body", "must be a JSON object")),
        Err(_) => Err(TranslateError::invalid("body", "is not valid JSON")),
    }
}

pub(crate) fn as_object<'a>(value: &'a Value, field: &str) -> Result<&'a Obj, TranslateError> {
    value
        .as_object()
        .ok_or_else(|| TranslateError::invalid(field, "must be an object"))
}

pub(crate) fn as_array<'a>(
    value: &'a Value,
    field: &str,
) -> Result<&'a Vec<Value>, TranslateError> {
    value
        .as_array()
        .ok_or_else(|| TranslateError::invalid(field, "must be an array"))
}

pub(crate) fn as_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, TranslateError> {
    value
        .as_str()
        .ok_or_else(|| TranslateError::invalid(field, "must be a string"))
}

pub(crate) fn as_f64(value: &Value, field: &str) -> Result<f64, TranslateError> {
    value
        .as_f64()
        .ok_or_else(|| TranslateError::invalid(field, "must be a number"))
}

pub(crate) fn as_u64(value: &Value, field: &str) -> Result<u64, TranslateError> {
    value
        .as_u64()
        .ok_or_else(|| TranslateError::invalid(field, "must be a non-negative integer"))
}

pub(crate) fn as_bool(value: &Value, field: &str) -> Result<bool, TranslateError> {
    value
        .as_bool()
        .ok_or_else(|| TranslateError::invalid(field, "must be a boolean"))
}

/// A required string field of `obj`.
pub(crate) fn required_str<'a>(
    obj: &'a Obj,
    key: &str,
    at: &str,
) -> Result<&'a str, TranslateError> {
    match obj.get(key) {
        Some(value) => as_str(value, &format!("{at}.{key}")),
        None => Err(TranslateError::invalid(format!("{at}.{key}"), "required")),
    }
}

/// The value of `key`, treating `null` as absent.
pub(crate) fn get<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Splits a `data:` URL into its media type and base64 data.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// A string field's value, or an empty string when it is missing or not a string.
pub(crate) fn owned_str(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}
