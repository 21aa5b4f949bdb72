//! What goes to one deployment: its URL, and the client's body as it is (the model renamed)
//! when the deployment speaks the client's format, translated otherwise.

use bytes::Bytes;
use http::Uri;

use crate::gateway::Deployment;
use crate::provider::Call;
use crate::request::Inbound;
use crate::translate::gemini::embeddings::Embedding;
use crate::translate::{self, Format, TargetOptions, TranslateError};

/// What [`prepare`] makes of a request for one deployment.
pub(super) struct Prepared {
    pub(super) url: Uri,
    /// `None` for an upload, which is taken when it is sent.
    pub(super) body: Option<Bytes>,
    pub(super) embedding: Option<Embedding>,
}

/// The URL and body for `deployment`: the client's request as it is when the deployment
/// speaks the client's format, translated otherwise.
pub(super) fn prepare(
    deployment: &Deployment,
    inbound: &Inbound,
    tuning: &crate::config::Tuning,
) -> Result<Prepared, TranslateError> {
    let preset = &deployment.provider.preset;
    let target = preset.format_for(inbound.format);
    let call = match inbound.endpoint {
        endpoint if endpoint.passthrough_path().is_some() => Call::Passthrough(endpoint),
        crate::Endpoint::Embeddings => Call::Embeddings,
        crate::Endpoint::CountTokens => Call::CountTokens,
        _ if target == Format::Responses => Call::Responses {
            stream: inbound.stream,
        },
        _ => Call::Chat {
            stream: inbound.stream,
        },
    };
    let Some(url) = deployment.url(call).cloned() else {
        return Err(match call {
            Call::Passthrough(endpoint) => {
                TranslateError::not_served(endpoint, deployment.provider.spec.kind)
            }
            _ => TranslateError::unsupported(inbound.endpoint.as_str(), target),
        });
    };
    let model = &deployment.spec.model;
    let whole = |body| Prepared {
        url: url.clone(),
        body: Some(body),
        embedding: None,
    };
    if inbound.uploaded().is_some() {
        return Ok(Prepared {
            url,
            body: None,
            embedding: None,
        });
    }
    if let Call::Passthrough(endpoint) = call {
        // Only the legacy completions stream OpenAI's chunks, and take `stream_options`.
        let ask_usage = endpoint == crate::Endpoint::Completions && preset.stream_usage_option;
        return Ok(whole(inbound.body_for(model, ask_usage)));
    }
    if inbound.endpoint == crate::Endpoint::Embeddings {
        if target == Format::Gemini {
            let embedding = translate::gemini::embeddings::encode_request(&inbound.body, model)?;
            return Ok(Prepared {
                body: Some(embedding.body.clone()),
                url,
                embedding: Some(embedding),
            });
        }
        return Ok(whole(inbound.body_for(model, false)));
    }
    let options = TargetOptions {
        max_tokens: tuning.default_max_tokens,
        stream_usage: preset.stream_usage_option,
        max_completion_tokens: preset.max_completion_tokens,
        reasoning: deployment.reasoning,
        refuse_hints: deployment.refuse_hints,
        max_output: deployment.spec.max_output_tokens,
    };
    let body = inbound.upstream_body(target, model, &options)?;
    Ok(whole(body))
}
