//! Bodies of the project routes.

use keygate_core::KeyLimits;
use keygate_store::Project;
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

/// A change to a project. `limits` replaces every limit at once; `{}` or `null` removes them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectBody {
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<LimitsParam>)]
    pub limits: Option<Option<serde_json::Value>>,
}

impl UpdateProjectBody {
    pub fn into_limits(self) -> Result<KeyLimits, ApiError> {
        // Only the limits can change today, so a body without them would change nothing.
        let Some(limits) = self.limits else {
            return Err(ApiError::validation(
                "body: at least one field to change (limits)",
            ));
        };
        limits.map_or_else(|| Ok(KeyLimits::default()), parse_limits)
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
}

impl From<&Project> for ProjectView {
    fn from(p: &Project) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            created_at: p.created_at.to_rfc3339(),
            limits: LimitsParam::from(&p.limits),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub data: Vec<ProjectView>,
}
