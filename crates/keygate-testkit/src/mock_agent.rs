//! The model behind a coding agent, scripted: for an upstream model whose name contains
//! `agent`, the mocks of every provider play one edit task through the agent's own tools, so
//! that a real agent CLI can be driven through keygate to a known end.
//!
//! The task is written in the prompt as `[[edit PATH OLD NEW]]` (no spaces inside the three
//! words). The first answer calls `Read` on `PATH`, the answer to its result calls `Edit` to
//! replace `OLD` with `NEW`, and the answer after that reports in text. The step is the number
//! of tool results in the conversation, counted in any provider's format (OpenAI's `tool`
//! messages and Responses `function_call_output` items, Anthropic's `tool_result` blocks,
//! Gemini's `functionResponse` parts). When the request offers `exec_command` (the Codex CLI's
//! shell), the file is read with `cat` and edited with `sed` through it instead.

use serde_json::{Value, json};

use crate::MockReply;

/// The task a prompt sets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Task {
    path: String,
    old: String,
    new: String,
}

/// The next reply of the scripted agent model, or `None` when `model` is not one.
pub(crate) fn step(model: &str, body: &Value) -> Option<MockReply> {
    if !model.contains("agent") {
        return None;
    }
    let Some(task) = find_task(body) else {
        return Some(MockReply::Text(
            "No task found: write [[edit PATH OLD NEW]] in the prompt.".to_owned(),
        ));
    };
    let call =
        |name: &str, input: Value| MockReply::ToolCalls(vec![(name.to_owned(), input.to_string())]);
    // The Codex CLI offers a shell (`exec_command`) rather than Claude Code's file tools.
    let shell = offers(body, "exec_command");
    Some(match tool_results(body) {
        0 if shell => call("exec_command", json!({"cmd": format!("cat {}", task.path)})),
        0 => call("Read", json!({"file_path": task.path})),
        1 if shell => call(
            "exec_command",
            json!({"cmd": format!("sed -i 's/{}/{}/' {}", task.old, task.new, task.path)}),
        ),
        1 => call(
            "Edit",
            json!({"file_path": task.path, "old_string": task.old, "new_string": task.new}),
        ),
        _ => MockReply::Text(format!(
            "Done: replaced {} with {} in {}.",
            task.old, task.new, task.path
        )),
    })
}

fn find_task(value: &Value) -> Option<Task> {
    match value {
        Value::String(text) => {
            let start = text.find("[[edit ")? + "[[edit ".len();
            let end = start + text[start..].find("]]")?;
            let mut words = text[start..end].split_whitespace();
            let task = Task {
                path: words.next()?.to_owned(),
                old: words.next()?.to_owned(),
                new: words.next()?.to_owned(),
            };
            words.next().is_none().then_some(task)
        }
        Value::Array(items) => items.iter().find_map(find_task),
        Value::Object(map) => map.values().find_map(find_task),
        _ => None,
    }
}

/// Whether a tool (or a call of one) named `name` is anywhere in the request.
fn offers(value: &Value, name: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| offers(item, name)),
        Value::Object(map) => {
            map.get("name").and_then(Value::as_str) == Some(name)
                || map.values().any(|value| offers(value, name))
        }
        _ => false,
    }
}

fn tool_results(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(tool_results).sum(),
        Value::Object(map) => {
            let own = usize::from(
                map.get("role").and_then(Value::as_str) == Some("tool")
                    || map.get("type").and_then(Value::as_str) == Some("tool_result")
                    || map.get("type").and_then(Value::as_str) == Some("function_call_output")
                    || map.contains_key("functionResponse"),
            );
            own + map.values().map(tool_results).sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_read_edit_report_in_every_format() {
        let prompt = "Please: [[edit /tmp/notes.txt draft final]]";
        let openai = |results: usize| {
            let mut messages = vec![json!({"role": "user", "content": prompt})];
            for _ in 0..results {
                messages.push(json!({"role": "tool", "tool_call_id": "c", "content": "ok"}));
            }
            json!({"messages": messages})
        };
        let Some(MockReply::ToolCalls(calls)) = step("agent", &openai(0)) else {
            panic!("a read first");
        };
        assert_eq!(calls[0].0, "Read");
        let Some(MockReply::ToolCalls(calls)) = step("agent", &openai(1)) else {
            panic!("an edit next");
        };
        assert_eq!(calls[0].0, "Edit");
        assert!(calls[0].1.contains("\"new_string\":\"final\""));
        assert!(matches!(
            step("agent", &openai(2)),
            Some(MockReply::Text(_))
        ));
        let anthropic = json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]});
        let gemini = json!({"contents": [
            {"role": "user", "parts": [{"text": prompt}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "Read"}}]}]});
        for body in [anthropic, gemini] {
            let Some(MockReply::ToolCalls(calls)) = step("agent-model", &body) else {
                panic!("an edit after one result: {body}");
            };
            assert_eq!(calls[0].0, "Edit");
        }
        assert!(step("gpt-4o", &openai(0)).is_none());
        // The Codex CLI's shell, in the Responses API's items.
        let codex = |results: usize| {
            let mut input = vec![json!({"role": "user", "content": prompt})];
            for _ in 0..results {
                input.push(json!({"type": "function_call_output", "call_id": "c", "output": "ok"}));
            }
            json!({"tools": [{"type": "function", "name": "exec_command"}], "input": input})
        };
        let Some(MockReply::ToolCalls(calls)) = step("agent", &codex(1)) else {
            panic!("an edit through the shell");
        };
        assert_eq!(calls[0].0, "exec_command");
        assert!(
            calls[0]
                .1
                .contains("sed -i 's/draft/final/' /tmp/notes.txt"),
            "{}",
            calls[0].1
        );
    }
}
