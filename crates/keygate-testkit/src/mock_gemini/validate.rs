//! The checks the Gemini API makes on a `GenerateContentRequest` before it answers, with its
//! error messages: unknown names and wrongly typed values as its JSON parser words them, then
//! the request rules (`* GenerateContentRequest.<field>: ...`). Field names may be written in
//! lowerCamelCase or snake_case, as the real parser accepts both; error paths use snake_case
//! like the real API's.

use serde_json::{Map, Value};

/// A refused request: the field at fault (snake_case path) and the message.
#[derive(Debug)]
pub(super) struct Invalid {
    pub(super) field: String,
    pub(super) message: String,
}

type Checked = Result<(), Invalid>;

const TOP_LEVEL: &[&str] = &[
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
];

/// The fields of the `data` oneof of a `Part`: exactly one must be set.
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

const PART_METADATA: &[&str] = &["thought", "thoughtSignature", "videoMetadata"];

const GENERATION_CONFIG: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "candidateCount",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "responseLogprobs",
    "logprobs",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "thinkingConfig",
    "mediaResolution",
    "speechConfig",
];

/// The OpenAPI subset Gemini's `Schema` accepts; JSON Schema keywords such as
/// `additionalProperties` or `$schema` are unknown names to it.
const SCHEMA: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

const TOOL: &[&str] = &[
    "functionDeclarations",
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "urlContext",
    "fileSearch",
    "googleMaps",
    "computerUse",
];

const FUNCTION_DECLARATION: &[&str] = &[
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
];

const CALLING_MODES: &[&str] = &["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"];

const PROTO: &str = "type.googleapis.com/google.ai.generativelanguage.v1beta";

/// Checks a `generateContent` / `streamGenerateContent` body.
pub(super) fn request(body: &Value) -> Checked {
    let fields = message("", body, "GenerateContentRequest")?;
    known("", fields, TOP_LEVEL)?;
    contents(get(fields, "contents"))?;
    if let Some(system) = get(fields, "systemInstruction") {
        system_instruction(system)?;
    }
    if let Some(tools) = get(fields, "tools") {
        for (n, tool) in repeated("tools", tools, "Tool")?.iter().enumerate() {
            self::tool(&format!("tools[{n}]"), tool)?;
        }
    }
    if let Some(config) = get(fields, "toolConfig") {
        tool_config(config)?;
    }
    if let Some(config) = get(fields, "generationConfig") {
        generation_config(config)?;
    }
    if let Some(settings) = get(fields, "safetySettings") {
        for (n, setting) in repeated("safety_settings", settings, "SafetySetting")?
            .iter()
            .enumerate()
        {
            let path = format!("safety_settings[{n}]");
            let fields = message(&path, setting, "SafetySetting")?;
            known(&path, fields, &["category", "threshold"])?;
            for name in ["category", "threshold"] {
                match get(fields, name) {
                    Some(value) => string(&at(&path, name), value)?,
                    None => return Err(rule(&at(&path, name), &format!("{name} is required"))),
                }
            }
        }
    }
    if let Some(cached) = get(fields, "cachedContent") {
        string("cached_content", cached)?;
    }
    Ok(())
}

fn contents(value: Option<&Value>) -> Checked {
    let Some(value) = value else {
        return Err(rule("contents", "contents is not specified"));
    };
    let contents = repeated("contents", value, "Content")?;
    if contents.is_empty() {
        return Err(rule("contents", "contents is not specified"));
    }
    for (n, content) in contents.iter().enumerate() {
        self::content(&format!("contents[{n}]"), content, contents.len() > 1)?;
    }
    function_turns(contents)
}

fn content(path: &str, value: &Value, multi_turn: bool) -> Checked {
    let fields = message(path, value, "Content")?;
    known(path, fields, &["parts", "role"])?;
    match get(fields, "role") {
        None | Some(Value::Null) if !multi_turn => {}
        Some(Value::String(role)) if role.is_empty() && !multi_turn => {}
        Some(Value::String(role)) if role == "user" || role == "model" => {}
        _ => {
            return Err(rule(
                &at(path, "role"),
                "Please use a valid role: user, model.",
            ));
        }
    }
    let parts_path = at(path, "parts");
    let parts = match get(fields, "parts") {
        Some(parts) => repeated(&parts_path, parts, "Part")?,
        None => &[],
    };
    if parts.is_empty() {
        return Err(rule(&parts_path, "contents.parts must not be empty."));
    }
    for (n, part) in parts.iter().enumerate() {
        self::part(&format!("{parts_path}[{n}]"), part)?;
    }
    Ok(())
}

fn part(path: &str, value: &Value) -> Checked {
    let fields = message(path, value, "Part")?;
    let allowed: Vec<&str> = PART_DATA.iter().chain(PART_METADATA).copied().collect();
    known(path, fields, &allowed)?;
    let set: Vec<&str> = PART_DATA
        .iter()
        .copied()
        .filter(|name| get(fields, name).is_some())
        .collect();
    match set.as_slice() {
        [] => {
            return Err(rule(
                &format!("{path}.data"),
                "required oneof field 'data' must have one initialized field",
            ));
        }
        [_] => {}
        [_, second, ..] => {
            return Err(Invalid {
                field: path.to_owned(),
                message: format!(
                    "Invalid value at '{path}' (oneof), oneof field 'data' is already set. Cannot set '{second}'"
                ),
            });
        }
    }
    if let Some(text) = get(fields, "text") {
        string(&at(path, "text"), text)?;
    }
    if let Some(blob) = get(fields, "inlineData") {
        let path = at(path, "inlineData");
        let blob = message(&path, blob, "Blob")?;
        known(&path, blob, &["mimeType", "data"])?;
        required_string(&path, blob, "mimeType")?;
        required_string(&path, blob, "data")?;
    }
    if let Some(file) = get(fields, "fileData") {
        let path = at(path, "fileData");
        let file = message(&path, file, "FileData")?;
        known(&path, file, &["mimeType", "fileUri"])?;
        required_string(&path, file, "fileUri")?;
    }
    if let Some(call) = get(fields, "functionCall") {
        let path = at(path, "functionCall");
        let call = message(&path, call, "FunctionCall")?;
        known(&path, call, &["id", "name", "args"])?;
        function_name(&path, call)?;
        if let Some(args) = get(call, "args") {
            structure(&at(&path, "args"), args)?;
        }
    }
    if let Some(response) = get(fields, "functionResponse") {
        let path = at(path, "functionResponse");
        let response = message(&path, response, "FunctionResponse")?;
        let names = [
            "id",
            "name",
            "response",
            "willContinue",
            "scheduling",
            "parts",
        ];
        known(&path, response, &names)?;
        function_name(&path, response)?;
        match get(response, "response") {
            Some(value) => structure(&at(&path, "response"), value)?,
            None => return Err(rule(&at(&path, "response"), "response is required")),
        }
    }
    if let Some(thought) = get(fields, "thought") {
        boolean(&at(path, "thought"), thought)?;
    }
    Ok(())
}

/// A function call turn must follow a user turn, and the turn after it must answer every call.
fn function_turns(contents: &[Value]) -> Checked {
    let count = |content: &Value, kind: &str| {
        let parts = get_in(content, "parts").and_then(Value::as_array);
        parts
            .into_iter()
            .flatten()
            .filter(|part| part.as_object().is_some_and(|p| get(p, kind).is_some()))
            .count()
    };
    for (n, content) in contents.iter().enumerate() {
        let calls = count(content, "functionCall");
        if calls == 0 {
            continue;
        }
        let after_user = n
            .checked_sub(1)
            .is_some_and(|p| get_in(&contents[p], "role").and_then(Value::as_str) == Some("user"));
        if !after_user {
            return Err(rule(
                &format!("contents[{n}]"),
                "Please ensure that function call turn comes immediately after a user turn or after a function response turn.",
            ));
        }
        if let Some(next) = contents.get(n + 1)
            && count(next, "functionResponse") != calls
        {
            return Err(rule(
                &format!("contents[{}]", n + 1),
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
            ));
        }
    }
    Ok(())
}

/// `{parts: [{text}]}`: the system instruction takes text only.
fn system_instruction(value: &Value) -> Checked {
    let path = "system_instruction";
    let fields = message(path, value, "Content")?;
    known(path, fields, &["parts", "role"])?;
    let parts_path = at(path, "parts");
    let parts = match get(fields, "parts") {
        Some(parts) => repeated(&parts_path, parts, "Part")?,
        None => &[],
    };
    if parts.is_empty() {
        return Err(rule(&parts_path, "contents.parts must not be empty."));
    }
    for (n, part) in parts.iter().enumerate() {
        let path = format!("{parts_path}[{n}]");
        self::part(&path, part)?;
        if get_in(part, "text").is_none() {
            return Err(rule(&path, "system_instruction only supports text parts."));
        }
    }
    Ok(())
}

fn tool(path: &str, value: &Value) -> Checked {
    let fields = message(path, value, "Tool")?;
    known(path, fields, TOOL)?;
    let Some(declarations) = get(fields, "functionDeclarations") else {
        return Ok(());
    };
    let list_path = at(path, "functionDeclarations");
    let declarations = repeated(&list_path, declarations, "FunctionDeclaration")?;
    for (n, declaration) in declarations.iter().enumerate() {
        let path = format!("{list_path}[{n}]");
        let fields = message(&path, declaration, "FunctionDeclaration")?;
        known(&path, fields, FUNCTION_DECLARATION)?;
        function_name(&path, fields)?;
        let name = get(fields, "name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !valid_function_name(name) {
            return Err(rule(
                &at(&path, "name"),
                "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.",
            ));
        }
        if let Some(description) = get(fields, "description") {
            string(&at(&path, "description"), description)?;
        }
        for name in ["parameters", "response"] {
            if let Some(value) = get(fields, name) {
                schema(&at(&path, name), value)?;
            }
        }
    }
    Ok(())
}

fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// A non-empty `name` field, as function calls, responses and declarations need.
fn function_name(path: &str, fields: &Map<String, Value>) -> Checked {
    let name_path = at(path, "name");
    match get(fields, "name") {
        Some(Value::String(name)) if !name.is_empty() => Ok(()),
        Some(value @ (Value::Array(_) | Value::Object(_) | Value::Number(_) | Value::Bool(_))) => {
            Err(bad_value(&name_path, "TYPE_STRING", value))
        }
        _ => Err(rule(&name_path, "Name cannot be empty.")),
    }
}

fn schema(path: &str, value: &Value) -> Checked {
    let fields = message(path, value, "Schema")?;
    known(path, fields, SCHEMA)?;
    if let Some(kind) = get(fields, "type")
        && !kind.is_string()
    {
        return Err(bad_value(&at(path, "type"), &format!("{PROTO}.Type"), kind));
    }
    if let Some(properties) = get(fields, "properties") {
        let properties_path = at(path, "properties");
        let Some(properties) = properties.as_object() else {
            return Err(bad_value(
                &properties_path,
                &format!("{PROTO}.Schema"),
                properties,
            ));
        };
        for (n, property) in properties.values().enumerate() {
            schema(&format!("{properties_path}[{n}].value"), property)?;
        }
    }
    if let Some(items) = get(fields, "items") {
        schema(&at(path, "items"), items)?;
    }
    if let Some(any_of) = get(fields, "anyOf") {
        let list_path = at(path, "anyOf");
        for (n, option) in repeated(&list_path, any_of, "Schema")?.iter().enumerate() {
            schema(&format!("{list_path}[{n}]"), option)?;
        }
    }
    for name in ["required", "enum", "propertyOrdering"] {
        if let Some(values) = get(fields, name) {
            let list_path = at(path, name);
            for (n, value) in repeated(&list_path, values, "string")?.iter().enumerate() {
                string(&format!("{list_path}[{n}]"), value)?;
            }
        }
    }
    Ok(())
}

fn tool_config(value: &Value) -> Checked {
    let path = "tool_config";
    let fields = message(path, value, "ToolConfig")?;
    known(path, fields, &["functionCallingConfig", "retrievalConfig"])?;
    let Some(calling) = get(fields, "functionCallingConfig") else {
        return Ok(());
    };
    let path = at(path, "functionCallingConfig");
    let calling = message(&path, calling, "FunctionCallingConfig")?;
    known(&path, calling, &["mode", "allowedFunctionNames"])?;
    if let Some(mode) = get(calling, "mode")
        && !mode
            .as_str()
            .is_some_and(|mode| CALLING_MODES.contains(&mode))
    {
        let kind = format!("{PROTO}.FunctionCallingConfig.Mode");
        return Err(bad_value(&at(&path, "mode"), &kind, mode));
    }
    if let Some(names) = get(calling, "allowedFunctionNames") {
        let list_path = at(&path, "allowedFunctionNames");
        for (n, name) in repeated(&list_path, names, "string")?.iter().enumerate() {
            string(&format!("{list_path}[{n}]"), name)?;
        }
    }
    Ok(())
}

fn generation_config(value: &Value) -> Checked {
    let path = "generation_config";
    let fields = message(path, value, "GenerationConfig")?;
    known(path, fields, GENERATION_CONFIG)?;
    for name in ["temperature", "topP", "presencePenalty", "frequencyPenalty"] {
        if let Some(value) = get(fields, name)
            && !value.is_number()
        {
            return Err(bad_value(&at(path, name), "TYPE_FLOAT", value));
        }
    }
    if let Some(temperature) = get(fields, "temperature").and_then(Value::as_f64)
        && !(0.0..=2.0).contains(&temperature)
    {
        return Err(rule(
            &at(path, "temperature"),
            "temperature must be in the range [0.0, 2.0].",
        ));
    }
    for name in ["topK", "maxOutputTokens", "candidateCount", "seed"] {
        if let Some(value) = get(fields, name)
            && !value.as_f64().is_some_and(|x| x.fract() == 0.0)
        {
            return Err(bad_value(&at(path, name), "TYPE_INT32", value));
        }
    }
    if let Some(stops) = get(fields, "stopSequences") {
        let list_path = at(path, "stopSequences");
        for (n, stop) in repeated(&list_path, stops, "string")?.iter().enumerate() {
            string(&format!("{list_path}[{n}]"), stop)?;
        }
    }
    if let Some(mime) = get(fields, "responseMimeType") {
        string(&at(path, "responseMimeType"), mime)?;
    }
    if let Some(schema) = get(fields, "responseSchema") {
        self::schema(&at(path, "responseSchema"), schema)?;
    }
    if let Some(thinking) = get(fields, "thinkingConfig") {
        let path = at(path, "thinkingConfig");
        let thinking = message(&path, thinking, "ThinkingConfig")?;
        known(
            &path,
            thinking,
            &["thinkingBudget", "includeThoughts", "thinkingLevel"],
        )?;
    }
    Ok(())
}

/// `lowerCamelCase` to `snake_case`, as the real API names fields in its errors.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Field `name` (given in lowerCamelCase), written either way.
fn get<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).or_else(|| fields.get(&snake(name)))
}

fn get_in<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_object().and_then(|fields| get(fields, name))
}

/// The path of field `name` of the object at `path`.
fn at(path: &str, name: &str) -> String {
    if path.is_empty() {
        snake(name)
    } else {
        format!("{path}.{}", snake(name))
    }
}

/// The real API rejects names its messages do not have.
fn known(path: &str, fields: &Map<String, Value>, names: &[&str]) -> Checked {
    let Some(key) = fields
        .keys()
        .find(|key| !names.contains(&camel(key).as_str()))
    else {
        return Ok(());
    };
    let message = if path.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{key}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field."
        )
    };
    Err(Invalid {
        field: path.to_owned(),
        message,
    })
}

/// A request rule broken, worded as the real API's `* GenerateContentRequest.<path>: ...`.
fn rule(path: &str, text: &str) -> Invalid {
    Invalid {
        field: path.to_owned(),
        message: format!("* GenerateContentRequest.{path}: {text}\n"),
    }
}

fn bad_value(path: &str, kind: &str, value: &Value) -> Invalid {
    Invalid {
        field: path.to_owned(),
        message: format!("Invalid value at '{path}' ({kind}), {value}"),
    }
}

fn message<'a>(
    path: &str,
    value: &'a Value,
    proto: &str,
) -> Result<&'a Map<String, Value>, Invalid> {
    value
        .as_object()
        .ok_or_else(|| bad_value(path, &format!("{PROTO}.{proto}"), value))
}

fn repeated<'a>(path: &str, value: &'a Value, proto: &str) -> Result<&'a [Value], Invalid> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| bad_value(path, &format!("{PROTO}.{proto}"), value))
}

fn structure(path: &str, value: &Value) -> Checked {
    match value {
        Value::Object(_) => Ok(()),
        _ => Err(bad_value(
            path,
            "type.googleapis.com/google.protobuf.Struct",
            value,
        )),
    }
}

fn string(path: &str, value: &Value) -> Checked {
    match value {
        Value::String(_) => Ok(()),
        _ => Err(bad_value(path, "TYPE_STRING", value)),
    }
}

fn boolean(path: &str, value: &Value) -> Checked {
    match value {
        Value::Bool(_) => Ok(()),
        _ => Err(bad_value(path, "TYPE_BOOL", value)),
    }
}

fn required_string(path: &str, fields: &Map<String, Value>, name: &str) -> Checked {
    let field = at(path, name);
    match get(fields, name) {
        Some(value) => string(&field, value),
        None => Err(rule(&field, &format!("{} is required", snake(name)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(snake("systemInstruction"), "system_instruction");
        assert_eq!(camel("system_instruction"), "systemInstruction");
        assert_eq!(camel("contents"), "contents");
        assert!(valid_function_name("get_weather"));
        assert!(!valid_function_name("1st"));
        assert!(!valid_function_name("has space"));
    }
}
