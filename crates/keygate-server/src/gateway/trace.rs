//! The span of one LLM request, for OpenTelemetry: the GenAI attributes (operation, provider,
//! request and response model, token usage, error), the client's W3C `traceparent` as
//! its parent, and the upstream attempts as its children (in keygate-llm's dispatch). Spans
//! have the target `keygate::otel`: only the exporter's layer wants them, so without
//! `otel_endpoint` their call sites are disabled and cost nothing. Prompts and answers are
//! recorded only for a model group with `trace_content = true` (bounded; a stream's answer
//! is not).

use keygate_core::UsageRecord;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of a request to `model` by `operation` (`chat`, `embeddings`, `count_tokens`),
/// a child of the client's trace when it sent a valid `traceparent`.
pub(crate) fn request_span(
    operation: &'static str,
    model: &str,
    traceparent: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        target: "keygate::otel",
        "gen_ai",
        otel.name = format!("{operation} {model}"),
        otel.kind = "server",
        otel.status_code = Empty,
        gen_ai.operation.name = operation,
        gen_ai.request.model = model,
        gen_ai.provider.name = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
        keygate.deployment = Empty,
        keygate.attempts = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
    );
    if !span.is_disabled()
        && let Some(parent) = traceparent.and_then(remote_parent)
    {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    span
}

/// Longest content recorded on a span, in bytes.
const CONTENT_BYTES: usize = 16 * 1024;

/// Records prompt or answer text on a span whose group asked for it (`trace_content`),
/// bounded.
pub(crate) fn record_content(span: &Span, field: &'static str, text: &str) {
    if span.is_disabled() {
        return;
    }
    let mut end = text.len().min(CONTENT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    span.record(field, &text[..end]);
}

/// Records what a request's usage record says on its span.
pub(crate) fn record_outcome(span: &Span, record: &UsageRecord) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", record.status);
    if let Some(provider) = &record.provider {
        span.record("gen_ai.provider.name", provider.as_str());
    }
    if let Some(deployment) = &record.deployment {
        span.record("keygate.deployment", deployment.as_str());
        // The deployment is `provider/model`: the model that answered.
        if let Some((_, model)) = deployment.split_once('/') {
            span.record("gen_ai.response.model", model);
        }
    }
    span.record("keygate.attempts", record.attempts);
    if record.tokens.prompt > 0 || record.tokens.completion > 0 {
        span.record("gen_ai.usage.input_tokens", record.tokens.prompt);
        span.record("gen_ai.usage.output_tokens", record.tokens.completion);
    }
    // The finish reason is not carried to the usage record, so it is not claimed here.
    if let Some(code) = &record.error_code {
        span.record("error.type", code.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

/// The span a W3C `traceparent` (`00-TRACE-SPAN-FLAGS`) names, if it is well formed.
fn remote_parent(header: &str) -> Option<SpanContext> {
    let mut parts = header.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version == "ff"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_as_w3c_says() {
        let parent =
            remote_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled() && parent.is_remote());
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote_parent(bad).is_none(), "{bad}");
        }
    }
}
