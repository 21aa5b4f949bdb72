//! The admin operations on webhook endpoints: create (the signing secret handed over once),
//! list, show, update, delete, their deliveries, replays and test events. An endpoint belongs
//! to the organisation, or to one project (it hears that project's events only); a
//! project-bound admin manages only its project's endpoints.

use keygate_core::{
    AuditAction, DeliveryId, Permission, ValidationError, WebhookId, record::check_text,
};
use keygate_store::{
    CursorMove, Delivery, DeliveryFilter, DeliveryState, OutboxEvent, WebhookEndpoint, WebhookPatch,
};
use keygate_watch::{Event, EventType, WebhookSecret};

use super::{Alerts, sealing};
use crate::ServiceError;
use crate::service::Caller;

/// Longest endpoint URL.
const MAX_URL_CHARS: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Most event types one endpoint lists.
const MAX_EVENT_TYPES: usize = 50;
/// Largest page of deliveries.
const MAX_PAGE: u32 = 200;

/// A new endpoint, as asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateWebhook {
    pub url: String,
    pub description: Option<String>,
    /// Event type names; empty for every event.
    pub events: Vec<String>,
    /// A project id or name: only that project's events.
    pub project: Option<String>,
}

/// A created endpoint and its signing secret, shown once.
#[derive(Debug)]
pub struct NewWebhook {
    pub endpoint: WebhookEndpoint,
    pub secret: WebhookSecret,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

/// One page of an endpoint's deliveries, newest first.
#[derive(Debug)]
pub struct WebhookPage {
    pub deliveries: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

/// Whether a URL's host may be public: not a loopback, private or special address written
/// as such, nor a name kept for local networks. (Names are judged again by their addresses
/// when a delivery connects.)
pub(super) fn host_may_be_public(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => keygate_llm::egress::is_public(ip.into()),
        Some(url::Host::Ipv6(ip)) => keygate_llm::egress::is_public(ip.into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            !(name == "localhost"
                || [".localhost", ".local", ".internal", ".home.arpa"]
                    .iter()
                    .any(|suffix| name.ends_with(suffix)))
        }
        None => false,
    }
}

fn check_url(text: &str, allow_private: bool) -> Result<String, ValidationError> {
    let refuse = |expected| Err(ValidationError::new("url", expected));
    let Some(url) = url::Url::parse(text)
        .ok()
        .filter(|_| text.chars().count() <= MAX_URL_CHARS)
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|u| u.fragment().is_none())
    else {
        return refuse("an http or https URL of at most 2048 characters, without a fragment");
    };
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("a URL without a user or password (put a token in the path or query)");
    }
    if keygate_llm::egress::reaches_metadata(&url) {
        return refuse("a receiver, not a link-local or cloud metadata address");
    }
    if !allow_private && !host_may_be_public(&url) {
        return refuse(
            "a public address (loopback and private addresses need `webhooks_allow_private`)",
        );
    }
    Ok(url.to_string())
}

fn check_events(names: &[String]) -> Result<Vec<String>, ValidationError> {
    if names.len() > MAX_EVENT_TYPES {
        return Err(ValidationError::new("events", "at most 50 event types"));
    }
    let mut kinds = names
        .iter()
        .map(|name| EventType::parse(name).map(EventType::as_str))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ValidationError::new("events", "event types from docs/events.md"))?;
    kinds.sort_unstable();
    kinds.dedup();
    Ok(kinds.into_iter().map(str::to_owned).collect())
}

fn check_description(text: &str) -> Result<(), ValidationError> {
    if text.is_empty() {
        return Ok(());
    }
    check_text("description", text, MAX_DESCRIPTION_CHARS)
}

/// What the audit log keeps of an endpoint: where it is (scheme, host and port; the path or
/// query may hold the receiver's token) and what it hears.
fn audit_details(endpoint: &WebhookEndpoint) -> serde_json::Value {
    let origin = url::Url::parse(&endpoint.url)
        .ok()
        .map(|u| u.origin().ascii_serialization());
    serde_json::json!({
        "url": origin,
        "events": endpoint.event_types,
        "disabled": endpoint.disabled_at.is_some(),
    })
}

impl Alerts {
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        input: CreateWebhook,
    ) -> Result<NewWebhook, ServiceError> {
        let project = match &input.project {
            Some(name) => Some(self.keygate.resolve_project(caller, name).await?.id),
            None => None,
        };
        self.keygate
            .authorize(caller, Permission::WebhooksWrite, project.as_ref(), None)
            .await?;
        let url = check_url(&input.url, self.settings.allow_private)?;
        let description = input.description.unwrap_or_default();
        check_description(&description)?;
        let event_types = check_events(&input.events)?;
        let secret = WebhookSecret::generate().map_err(|_| ServiceError::Random)?;
        let id = WebhookId::generate();
        let (kek_id, secret_sealed) = sealing::seal(self.keygate.kek().as_ref(), &id, &secret)?;
        let now = self.keygate.clock().now();
        let endpoint = WebhookEndpoint {
            id,
            org_id: caller.org().clone(),
            project_id: project,
            url,
            description,
            event_types,
            kek_id,
            secret_sealed,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut audit = caller.audit(AuditAction::WebhookCreate, endpoint.project_id.as_ref());
        audit.target = Some(endpoint.id.to_string());
        audit.details = audit_details(&endpoint);
        self.keygate
            .store()
            .create_webhook(&endpoint, &audit)
            .await?;
        Ok(NewWebhook { endpoint, secret })
    }

    /// The endpoints the caller may see: all of the organisation's, or its project's.
    pub async fn list_webhooks(
        &self,
        caller: &Caller,
    ) -> Result<Vec<WebhookEndpoint>, ServiceError> {
        let bound = caller.bound_project().cloned();
        self.keygate
            .authorize(caller, Permission::WebhooksRead, bound.as_ref(), None)
            .await?;
        let all = self.keygate.store().webhooks(caller.org()).await?;
        Ok(all
            .into_iter()
            .filter(|e| caller.may(Permission::WebhooksRead, e.project_id.as_ref()))
            .collect())
    }

    /// An endpoint the caller may act on with `permission`; one outside its reach is "not
    /// found", so its existence is not revealed.
    async fn visible_webhook(
        &self,
        caller: &Caller,
        id: &WebhookId,
        permission: Permission,
    ) -> Result<WebhookEndpoint, ServiceError> {
        let endpoint = self
            .keygate
            .store()
            .webhook(id)
            .await?
            .filter(|e| &e.org_id == caller.org())
            .ok_or(ServiceError::NotFound { entity: "webhook" })?;
        match self
            .keygate
            .authorize(
                caller,
                permission,
                endpoint.project_id.as_ref(),
                Some(id.as_str()),
            )
            .await
        {
            Err(ServiceError::Forbidden { .. })
                if !caller.may(Permission::WebhooksRead, endpoint.project_id.as_ref()) =>
            {
                Err(ServiceError::NotFound { entity: "webhook" })
            }
            Err(err) => Err(err),
            Ok(()) => Ok(endpoint),
        }
    }

    pub async fn webhook(
        &self,
        caller: &Caller,
        id: &WebhookId,
    ) -> Result<WebhookEndpoint, ServiceError> {
        self.visible_webhook(caller, id, Permission::WebhooksRead)
            .await
    }

    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &WebhookId,
        change: UpdateWebhook,
    ) -> Result<WebhookEndpoint, ServiceError> {
        let endpoint = self
            .visible_webhook(caller, id, Permission::WebhooksWrite)
            .await?;
        let patch = WebhookPatch {
            url: change
                .url
                .map(|url| check_url(&url, self.settings.allow_private))
                .transpose()?,
            description: change
                .description
                .map(|text| check_description(&text).map(|()| text))
                .transpose()?,
            event_types: change.events.map(|e| check_events(&e)).transpose()?,
            disabled: change.disabled,
        };
        let mut audit = caller.audit(AuditAction::WebhookUpdate, endpoint.project_id.as_ref());
        audit.target = Some(id.to_string());
        let now = self.keygate.clock().now();
        // The audit event describes the endpoint as it will be.
        let mut after = endpoint.clone();
        if let Some(url) = &patch.url {
            after.url.clone_from(url);
        }
        if let Some(types) = &patch.event_types {
            after.event_types.clone_from(types);
        }
        if let Some(disabled) = patch.disabled {
            after.disabled_at = disabled.then_some(now);
        }
        audit.details = audit_details(&after);
        Ok(self
            .keygate
            .store()
            .update_webhook(id, &patch, now, &audit)
            .await?)
    }

    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        id: &WebhookId,
    ) -> Result<(), ServiceError> {
        let endpoint = self
            .visible_webhook(caller, id, Permission::WebhooksWrite)
            .await?;
        let mut audit = caller.audit(AuditAction::WebhookDelete, endpoint.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = audit_details(&endpoint);
        Ok(self
            .keygate
            .store()
            .delete_webhook(id, self.keygate.clock().now(), &audit)
            .await?)
    }

    /// An endpoint's deliveries, newest first, optionally in one state (`dead`: the
    /// dead-letter list).
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: &WebhookId,
        state: Option<DeliveryState>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<WebhookPage, ServiceError> {
        self.visible_webhook(caller, id, Permission::WebhooksRead)
            .await?;
        let before = cursor
            .map(|c| DeliveryId::parse(c).map_err(|_| ServiceError::BadCursor))
            .transpose()?;
        let limit = limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let deliveries = self
            .keygate
            .store()
            .deliveries(&DeliveryFilter {
                endpoint_id: id.clone(),
                state,
                before,
                limit,
            })
            .await?;
        let next_cursor = (deliveries.len() == limit as usize)
            .then(|| deliveries.last().map(|d| d.id.to_string()))
            .flatten();
        Ok(WebhookPage {
            deliveries,
            next_cursor,
        })
    }

    /// Queues a delivery again from its first attempt (a dead one, or one the receiver lost).
    pub async fn replay_delivery(
        &self,
        caller: &Caller,
        id: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Delivery, ServiceError> {
        let endpoint = self
            .visible_webhook(caller, id, Permission::WebhooksWrite)
            .await?;
        let mut audit = caller.audit(AuditAction::WebhookReplay, endpoint.project_id.as_ref());
        audit.target = Some(id.to_string());
        audit.details = serde_json::json!({ "delivery": delivery.to_string() });
        Ok(self
            .keygate
            .store()
            .replay_delivery(id, delivery, self.keygate.clock().now(), &audit)
            .await?)
    }

    /// Sends a `webhook.test` event to this endpoint only; returns its id.
    pub async fn send_test(
        &self,
        caller: &Caller,
        id: &WebhookId,
    ) -> Result<keygate_core::EventId, ServiceError> {
        let endpoint = self
            .visible_webhook(caller, id, Permission::WebhooksWrite)
            .await?;
        let now = self.keygate.clock().now();
        let event = Event::new(
            EventType::WebhookTest,
            now,
            Some(endpoint.org_id.clone()),
            endpoint.project_id.clone(),
            serde_json::json!({ "webhook_id": id.to_string(), "actor": caller.actor_id() }),
        );
        let outbox = OutboxEvent {
            payload: event.payload(),
            id: event.id.clone(),
            org_id: event.org_id,
            project_id: event.project_id,
            event_type: event.kind.as_str().to_owned(),
            at: event.at,
        };
        self.keygate
            .store()
            .enqueue_events(&[outbox], Some(id), None::<&CursorMove<'_>>, now)
            .await?;
        Ok(event.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_for_shape_and_reach() {
        assert!(check_url("https://alerts.example.com/hook?token=x", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://169.254.169.254/latest",
            "http://metadata.google.internal/",
            "not a url",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        for private in [
            "http://127.0.0.1:9000/",
            "http://10.0.0.8/",
            "http://[::1]/",
            "http://localhost/",
            "http://db.internal/",
        ] {
            assert!(check_url(private, false).is_err(), "{private}");
            assert!(check_url(private, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn event_names_are_checked_and_sorted() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_events(&names(&["key.revoked", "key.suspended", "key.revoked"])).unwrap(),
            ["key.revoked", "key.suspended"]
        );
        assert!(check_events(&names(&["key.*"])).is_err());
    }
}
