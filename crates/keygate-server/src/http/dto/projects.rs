//! Bodies of the project routes.

use keygate_core::KeyLimits;
use std::collections::BTreeMap;

use keygate_store::{Project, ProjectChange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::limits::{LimitsParam, parse_limits};
use crate::http::ApiError;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectBody {
    pub name: String,
    /// Limits counted for all the project's keys together; without it, none.
    #[schema(value_type = Option<LimitsParam>)]
    pub limits: Option<serde_json::Value>,
}

impl CreateProjectBody {
    /// The limits asked for, read but not yet bounds-checked (the service does that).
    pub fn limits(&self) -> Result<KeyLimits, ApiError> {
        Ok(self
            .limits
            .clone()
            .map(parse_limits)
            .transpose()?
            .unwrap_or_default())
    }
}

/// A change to a project; a field left out stays as it is. `limits` replaces every limit at
/// once (`{}` or `null` removes them); `anomaly_actions` replaces the project's actions, by
/// detector (`{"spend_spike": "suspend"}`; `{}` or `null` falls back to the server's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectBody {
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<LimitsParam>)]
    pub limits: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub anomaly_actions: Option<Option<BTreeMap<String, String>>>,
}

impl UpdateProjectBody {
    pub fn into_change(self) -> Result<ProjectChange, ApiError> {
        if self.limits.is_none() && self.anomaly_actions.is_none() {
            return Err(ApiError::validation(
                "body: at least one field to change (limits, anomaly_actions)",
            ));
        }
        Ok(ProjectChange {
            limits: self
                .limits
                .map(|limits| limits.map_or_else(|| Ok(KeyLimits::default()), parse_limits))
                .transpose()?,
            anomaly_actions: self.anomaly_actions.map(Option::unwrap_or_default),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Limits counted for all the project's keys together, beside each key's own; `{}` when
    /// the project has none.
    pub limits: LimitsParam,
    /// The project's own anomaly actions, by detector, over the server's; `{}` when none.
    pub anomaly_actions: BTreeMap<String, String>,
}

impl From<&Project> for ProjectView {
    fn from(p: &Project) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            created_at: p.created_at.to_rfc3339(),
            limits: LimitsParam::from(&p.limits),
            anomaly_actions: p.anomaly_actions.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub data: Vec<ProjectView>,
}
