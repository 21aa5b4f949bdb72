//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::dto;
use super::error::{ErrorBody, ErrorDetail};
use super::routes;

struct AdminTokenAuth;

/// The answers every operation of a kind may give, whatever its handler: a refused source
/// (`429 source_blocked`) on every authenticated route; a body that is not JSON (415) or too
/// large (413) on every route that takes one; a bad query string (400) where there is one.
/// Written once here rather than on every handler, so no operation forgets one.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterIn};
        use utoipa::openapi::{RefOr, Response};
        let add = |operation: &mut Operation, status: &str, description: &str| {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::T(Response::new(description)));
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(
                        operation,
                        "429",
                        "`source_blocked`: too many failed authentications from this address (with `Retry-After`), or a limit",
                    );
                    add(operation, "401", "a missing or refused credential");
                }
                if operation.request_body.is_some() {
                    add(
                        operation,
                        "400",
                        "`invalid_json` or `validation_failed`: the body is not the request",
                    );
                    add(operation, "413", "`payload_too_large`");
                    add(
                        operation,
                        "415",
                        "`unsupported_media_type`: the body is not JSON",
                    );
                }
                let queried = operation.parameters.iter().flatten().any(|parameter| {
                    matches!(parameter, RefOr::T(p) if p.parameter_in == ParameterIn::Query)
                });
                if queried {
                    add(
                        operation,
                        "400",
                        "`validation_failed`: a query parameter is not valid",
                    );
                }
            }
        }
    }
}

impl Modify for AdminTokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "keygate", description = "API key management and secure API gateway"),
    paths(
        routes::keys::create, routes::keys::list, routes::keys::due, routes::keys::show,
        routes::keys::update, routes::keys::rotate, routes::keys::revoke, routes::keys::suspend,
        routes::keys::resume, routes::keys::delete, routes::keys::add_credits,
        routes::projects::list, routes::projects::create, routes::projects::show,
        routes::projects::update, routes::projects::add_credits,
        routes::tokens::create, routes::tokens::list, routes::tokens::revoke,
        routes::secrets::put, routes::secrets::list, routes::secrets::show,
        routes::secrets::delete, routes::secrets::reveal, routes::secrets::read_with_key,
        routes::secrets::rotate, routes::secrets::promote, routes::secrets::due,
        routes::audit::list, routes::audit::verify, routes::audit::export, routes::audit::public_key,
        routes::audit::checkpoints, routes::audit::checkpoint, routes::usage::report,
        routes::model_groups::list, routes::model_groups::show, routes::model_groups::put,
        routes::model_groups::delete,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::show,
        routes::webhooks::update, routes::webhooks::delete, routes::webhooks::test,
        routes::webhooks::deliveries, routes::webhooks::replay,
        routes::anomalies::list, routes::anomalies::ack, routes::review::review,
        routes::verify::verify, routes::leaks::report,
        routes::oauth::token, routes::oauth::jwks, routes::oauth::openid_configuration,
        routes::llm::chat_completions, routes::llm::embeddings, routes::llm::list_models,
        routes::llm::get_model, routes::llm::messages, routes::llm::count_tokens,
        routes::llm::responses, routes::llm::get_response, routes::llm::delete_response,
        routes::llm::response_input_items,
        routes::openai_endpoints::completions, routes::openai_endpoints::moderations,
        routes::openai_endpoints::image_generations, routes::openai_endpoints::speech,
        routes::openai_endpoints::transcriptions,
        routes::proxy::forward, routes::proxy::forward_root,
        routes::ops::healthz, routes::ops::readyz, routes::ops::metrics,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, dto::KeyView, dto::KeyWithSecret, dto::KeyList,
        dto::LimitsParam, dto::RateParam, dto::TokenRateParam, dto::PerParam, dto::QuotaParam,
        dto::BudgetParam, dto::WindowParam,
        dto::CreateKeyBody, dto::UpdateKeyBody, dto::RotateBody, dto::RevokeBody, dto::ReasonBody,
        dto::ProjectView, dto::ProjectList, dto::CreateProjectBody, dto::UpdateProjectBody,
        dto::CreateTokenBody,
        dto::TokenView, dto::TokenList, dto::TokenWithSecret, dto::AuditEventView, dto::AuditPublicKeyView, dto::AuditList,
        dto::AuditVerifyView, dto::PutSecretBody, dto::RevealBody, dto::RevealedValue,
        dto::SecretVersionView, dto::SecretView, dto::SecretList, dto::CheckBody,
        dto::RotateSecretBody, dto::PromoteBody, dto::RotationView, dto::DueSecretView,
        dto::DueSecretList, dto::VerifyBody, dto::VerifyResponse, dto::AccessTokenView, dto::Health,
        routes::usage::UsageReport, routes::usage::UsageRowView,
        routes::model_groups::ModelGroupView, routes::model_groups::ModelGroupList,
        routes::model_groups::DeploymentHealth,
        dto::CreateWebhookBody, dto::UpdateWebhookBody, dto::WebhookView, dto::WebhookList,
        dto::WebhookWithSecret, dto::DeliveryView, dto::DeliveryList, dto::DeliveryStateParam,
        dto::TestEventSent,
        routes::anomalies::AnomalyView, routes::anomalies::AnomalyList,
        routes::anomalies::AckBody, routes::anomalies::AnomalyState,
    )),
    modifiers(&AdminTokenAuth, &CommonResponses),
)]
struct ApiDoc;

/// The OpenAPI document of this server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The routes `routes.rs` serves, as `METHOD /path` (`ANY` for every method), read from
    /// its source: the router cannot be asked for them.
    fn served() -> BTreeSet<String> {
        let source = include_str!("routes.rs");
        // The admin router is built first and nested under `/admin/v1`.
        let admin_end = source
            .find("let llm")
            .expect("the LLM router follows the admin one");
        let mut served = BTreeSet::new();
        for (at, _) in source.match_indices(".route(") {
            let call = &source[at + ".route(".len()..];
            let end = call.find(".route(").unwrap_or(call.len());
            let call = &call[..end.min(call.find(';').unwrap_or(end))];
            let path = call.split('"').nth(1).expect("a path literal");
            let path = path.replace("{*", "{");
            let path = if at < admin_end {
                format!("/admin/v1{path}")
            } else {
                path
            };
            for method in ["get", "post", "put", "patch", "delete", "any"] {
                let called = call.contains(&format!("{method}(")) && {
                    // `get(` inside a longer name (`target_get(`) is not a method router.
                    call.match_indices(&format!("{method}(")).any(|(i, _)| {
                        i == 0
                            || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                                && call.as_bytes()[i - 1] != b'_'
                    })
                };
                if called {
                    served.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        served
    }

    #[test]
    fn every_served_route_is_in_the_document() {
        let document = super::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ] {
                if operation.is_some() {
                    documented.insert(format!("{method} {path}"));
                }
            }
        }
        // Not API operations: the document itself, and the discovery document's second name
        // (RFC 8414's), which serves the same document as `openid-configuration`.
        let apart = [
            "GET /openapi.json",
            "GET /.well-known/oauth-authorization-server",
        ];
        let served = served();
        assert!(served.len() > 60, "{served:?}");
        let missing: Vec<&String> = served
            .iter()
            .filter(|route| !apart.contains(&route.as_str()))
            .filter(|route| match route.strip_prefix("ANY ") {
                // A route for every method: documented as long as one of its methods is.
                Some(path) => !documented.iter().any(|d| d.ends_with(&format!(" {path}"))),
                None => !documented.contains(*route),
            })
            .collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        let stale: Vec<&String> = documented
            .iter()
            .filter(|d| {
                !served.contains(*d)
                    && !served.iter().any(|s| {
                        s.strip_prefix("ANY ")
                            .is_some_and(|path| d.ends_with(&format!(" {path}")))
                    })
            })
            .collect();
        assert!(stale.is_empty(), "documented but not served: {stale:?}");
    }
}
