//! What the CLI prints: tables for people, JSON for scripts, errors on standard error.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

use crate::CliError;

/// Writes to standard output; a closed pipe (e.g. `| head`) is not an error worth reporting.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// Writes a note to standard error.
pub fn note(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

pub fn json(value: &Value) {
    out(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// Reports a failure and turns it into the process exit code.
pub fn fail(err: &CliError) -> ExitCode {
    note(&format!("error: {err}"));
    ExitCode::from(err.exit_code())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.is_empty() => "-".to_owned(),
        other => other.to_string(),
    }
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    table
}

/// Rows of `items`, one column per field.
pub fn rows(items: &[Value], columns: &[(&str, &str)]) {
    if items.is_empty() {
        note("(none)");
        return;
    }
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let mut t = table(&headers);
    for item in items {
        t.add_row(columns.iter().map(|(_, field)| text(&item[*field])));
    }
    out(&t.to_string());
}

/// One object as field / value lines.
pub fn record(item: &Value, fields: &[&str]) {
    let mut t = table(&["field", "value"]);
    for field in fields {
        t.add_row([(*field).to_owned(), text(&item[*field])]);
    }
    out(&t.to_string());
}

/// One key as field / value lines, its limits on one line.
pub fn key(key: &Value) {
    record(&with_readable_limits(key), &KEY_FIELDS);
}

/// A key or project with its `limits` object replaced by [`limits_text`].
pub fn with_readable_limits(item: &Value) -> Value {
    let mut shown = item.clone();
    if let Some(limits) = shown.get_mut("limits") {
        *limits = Value::String(limits_text(limits));
    }
    shown
}

/// Limits on one line, each kind in its own part: `100/minute, 5000/day; 100000 tokens/minute;
/// 5 in flight; 1000 per day; $25.00 per month`, or `-` for none.
fn limits_text(limits: &Value) -> String {
    let each = |kind: &str, show: &dyn Fn(&Value) -> String| -> Option<String> {
        let items: Vec<String> = limits[kind]
            .as_array()
            .into_iter()
            .flatten()
            .map(show)
            .collect();
        (!items.is_empty()).then(|| items.join(", "))
    };
    let parts = [
        each("requests", &|rate| {
            format!("{}/{}", text(&rate["limit"]), text(&rate["per"]))
        }),
        each("tokens", &|rate| {
            format!("{} tokens/{}", text(&rate["limit"]), text(&rate["per"]))
        }),
        (!limits["concurrency"].is_null())
            .then(|| format!("{} in flight", text(&limits["concurrency"]))),
        (!limits["quota"].is_null()).then(|| {
            let quota = &limits["quota"];
            format!("{} per {}", text(&quota["amount"]), text(&quota["per"]))
        }),
        each("budgets", &|budget| {
            let mut shown = format!(
                "${} per {}",
                dollars(&text(&budget["usd"])),
                text(&budget["per"])
            );
            if let Some(alerts) = budget["alert_at"].as_array() {
                let list: Vec<String> = alerts.iter().map(|p| format!("{}%", text(p))).collect();
                shown.push_str(&format!(" (alerts at {})", list.join(" ")));
            }
            if !budget["throttle_at"].is_null() {
                let rate = &budget["throttle"];
                shown.push_str(&format!(
                    " (past {}%, {}/{})",
                    text(&budget["throttle_at"]),
                    text(&rate["limit"]),
                    text(&rate["per"])
                ));
            }
            shown
        }),
        (!limits["credits"].is_null())
            .then(|| format!("${} prepaid credits", dollars(&text(&limits["credits"])))),
    ];
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

/// `25.000000` as `25.00` and `0.000125` as it is: cents always, finer digits when they
/// matter.
fn dollars(amount: &str) -> String {
    match amount.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            format!("{whole}.{fraction:0<2}")
        }
        None => format!("{amount}.00"),
    }
}

pub const KEY_COLUMNS: [(&str, &str); 7] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("ENV", "env"),
    ("STATUS", "status"),
    ("HINT", "hint"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
];

const KEY_FIELDS: [&str; 25] = [
    "id",
    "project_id",
    "name",
    "env",
    "status",
    "hint",
    "scopes",
    "expires_at",
    "ip_allow",
    "publishable",
    "origins",
    "limits",
    "metadata",
    "created_at",
    "updated_at",
    "last_used_at",
    "revoked_at",
    "revoked_reason",
    "suspended_at",
    "suspended_reason",
    "throttle",
    "rotate_every_seconds",
    "rotated_at",
    "rotation_due_at",
    "generation",
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::limits_text;

    #[test]
    fn limits_read_on_one_line() {
        let both = json!({"requests": [{"limit": 100, "per": "minute"},
                                       {"limit": 5000, "per": "day"}], "concurrency": 5});
        assert_eq!(limits_text(&both), "100/minute, 5000/day; 5 in flight");
        let rates = json!({"requests": [{"limit": 10, "per": "second"}]});
        assert_eq!(limits_text(&rates), "10/second");
        assert_eq!(limits_text(&json!({"concurrency": 2})), "2 in flight");
        assert_eq!(limits_text(&json!({})), "-");
        let every = json!({
            "requests": [{"limit": 100, "per": "minute"}],
            "tokens": [{"limit": 100000, "per": "minute"}, {"limit": 5000000, "per": "day"}],
            "concurrency": 5,
            "quota": {"amount": 1000, "per": "day"},
            "budgets": [{"usd": "2.500000", "per": "day"}, {"usd": "0.000125", "per": "month"}],
        });
        assert_eq!(
            limits_text(&every),
            "100/minute; 100000 tokens/minute, 5000000 tokens/day; 5 in flight; \
             1000 per day; $2.50 per day, $0.000125 per month"
        );
        assert_eq!(
            limits_text(&json!({"budgets": [{"usd": "25", "per": "month"}]})),
            "$25.00 per month"
        );
    }
}
