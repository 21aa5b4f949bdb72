//! `GET /v1/responses/{id}/input_items`: the input items a kept answer was made from (the
//! whole conversation before it), in OpenAI's list shape and order (newest first unless
//! `order=asc`), paged by item id. Items the client sent without ids get ids derived from the
//! response's, so paging is stable; plain messages are written as the SDKs read them.

use keygate_llm::RequestError;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Refused;

/// The list's query, as OpenAI's API takes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InputItemsQuery {
    /// The item id the page starts after.
    pub after: Option<String>,
    /// Items on a page: 1 to 100, 20 unless given.
    pub limit: Option<u32>,
    /// `asc` or `desc` (the default).
    pub order: Option<String>,
}

fn refused(field: &'static str, reason: &'static str) -> Refused {
    Refused::Request(RequestError::Field { field, reason })
}

/// One item as the SDKs read it, with an id.
fn normalized(item: Value, response_id: &str, index: usize) -> Value {
    let Value::Object(mut item) = item else {
        return item;
    };
    let role = item.get("role").and_then(Value::as_str).map(str::to_owned);
    if !item.contains_key("type") && role.is_some() {
        item.insert("type".into(), "message".into());
    }
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("item")
        .to_owned();
    if kind == "message" {
        if let Some(Value::String(text)) = item.get("content") {
            let part = if role.as_deref() == Some("assistant") {
                json!({"type": "output_text", "text": text, "annotations": []})
            } else {
                json!({"type": "input_text", "text": text})
            };
            item.insert("content".into(), Value::Array(vec![part]));
        }
        item.entry("status").or_insert_with(|| "completed".into());
    }
    if !item.get("id").is_some_and(Value::is_string) {
        let prefix = match kind.as_str() {
            "message" => "msg",
            "function_call" => "fc",
            "function_call_output" => "fco",
            _ => "item",
        };
        let tail = response_id.strip_prefix("resp_").unwrap_or(response_id);
        item.insert("id".into(), format!("{prefix}_{tail}_{index}").into());
    }
    Value::Object(item)
}

/// One page of `conversation` (the kept JSON array of input items).
pub(super) fn page(
    response_id: &str,
    conversation: &str,
    query: &InputItemsQuery,
) -> Result<Value, Refused> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(refused("limit", "between 1 and 100"));
    }
    let descending = match query.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(refused("order", "`asc` or `desc`")),
    };
    let items: Vec<Value> = serde_json::from_str(conversation).unwrap_or_default();
    let mut items: Vec<Value> = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| normalized(item, response_id, index))
        .collect();
    if descending {
        items.reverse();
    }
    let id_of = |item: &Value| item.get("id").and_then(Value::as_str).map(str::to_owned);
    let start = match &query.after {
        None => 0,
        Some(after) => match items.iter().position(|i| id_of(i).as_ref() == Some(after)) {
            Some(at) => at + 1,
            None => return Err(refused("after", "not an item of this response")),
        },
    };
    let rest = items.len().saturating_sub(start);
    let data: Vec<Value> = items.into_iter().skip(start).take(limit as usize).collect();
    let mut list = Map::new();
    list.insert("object".into(), "list".into());
    list.insert("first_id".into(), data.first().and_then(id_of).into());
    list.insert("last_id".into(), data.last().and_then(id_of).into());
    list.insert("has_more".into(), (rest > data.len()).into());
    list.insert("data".into(), Value::Array(data));
    Ok(Value::Object(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERSATION: &str = r#"[
        {"role": "user", "content": "Hi, I am Ada."},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hello Ada.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"role": "user", "content": "What is my name?"}
    ]"#;

    fn query(after: Option<&str>, limit: Option<u32>, order: Option<&str>) -> InputItemsQuery {
        InputItemsQuery {
            after: after.map(str::to_owned),
            limit,
            order: order.map(str::to_owned),
        }
    }

    #[test]
    fn items_are_listed_newest_first_and_paged_by_id() {
        let first = page("resp_abc", CONVERSATION, &query(None, Some(2), None)).unwrap();
        assert_eq!(first["object"], "list");
        assert_eq!(first["data"][0]["id"], "msg_abc_3");
        assert_eq!(first["data"][0]["content"][0]["type"], "input_text");
        assert_eq!(first["data"][0]["type"], "message");
        assert_eq!(first["data"][1]["id"], "fc_abc_2");
        assert_eq!(first["has_more"], true);
        assert_eq!(first["last_id"], "fc_abc_2");
        let after = first["last_id"].as_str().map(str::to_owned);
        let second = page(
            "resp_abc",
            CONVERSATION,
            &query(after.as_deref(), Some(2), None),
        )
        .unwrap();
        assert_eq!(
            second["data"][0]["id"], "msg_1",
            "an id the client gave is kept"
        );
        assert_eq!(second["data"][1]["content"][0]["text"], "Hi, I am Ada.");
        assert_eq!(second["has_more"], false);
        let ascending = page("resp_abc", CONVERSATION, &query(None, None, Some("asc"))).unwrap();
        assert_eq!(ascending["first_id"], "msg_abc_0");
        assert_eq!(ascending["data"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn bad_queries_name_their_parameter() {
        let field = |q: InputItemsQuery| match page("resp_x", CONVERSATION, &q) {
            Err(Refused::Request(RequestError::Field { field, .. })) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(query(None, Some(0), None)), "limit");
        assert_eq!(field(query(None, Some(101), None)), "limit");
        assert_eq!(field(query(None, None, Some("up"))), "order");
        assert_eq!(field(query(Some("msg_nope"), None, None)), "after");
    }
}
