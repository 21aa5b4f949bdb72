//! The gateway a node serves: the model groups of `keygate.toml` plus those stored through
//! the admin API. A change made on this node applies at once; other nodes see the stored
//! revision change and rebuild within their reload interval.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use keygate_core::{AuditAction, Permission};
use keygate_llm::config::GroupFile;
use keygate_llm::{ConfigError, Gateway, GatewayConfig, GatewayFile};
use keygate_store::{Store, StoredModelGroup};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::service::Caller;
use crate::{Keygate, ServiceError};

/// Where a model group is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupSource {
    /// `keygate.toml`: changed by editing the file and restarting.
    Config,
    /// The admin API: stored, shared by every node.
    Api,
}

/// A model group as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub alias: String,
    pub source: GroupSource,
    #[serde(flatten)]
    pub group: GroupFile,
}

#[derive(Debug)]
pub struct GatewayState {
    /// The file's tables; stored groups are added to them.
    base: GatewayFile,
    /// The environment `env::` credentials are read from, as it was at start.
    env: BTreeMap<String, String>,
    current: RwLock<Arc<Gateway>>,
    /// The stored revision the current gateway was built from.
    revision: Mutex<Option<String>>,
}

impl GatewayState {
    /// The gateway of the file alone (stored groups are added by [`GatewayState::reload`]).
    pub fn new(base: GatewayFile, env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let gateway = build(&base, &env)?;
        Ok(Self {
            base,
            env,
            current: RwLock::new(Arc::new(gateway)),
            revision: Mutex::new(None),
        })
    }

    /// A gateway without model groups.
    pub fn empty() -> Self {
        Self {
            base: GatewayFile::default(),
            env: BTreeMap::new(),
            current: RwLock::new(Arc::new(Gateway::empty())),
            revision: Mutex::new(None),
        }
    }

    /// The gateway to serve a request with; a reload never disturbs requests in flight.
    pub fn current(&self) -> Arc<Gateway> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn compose(&self, stored: &BTreeMap<String, GroupFile>) -> Result<Gateway, ConfigError> {
        let mut file = self.base.clone();
        for (alias, group) in stored {
            file.model_groups.insert(alias.clone(), group.clone());
        }
        build(&file, &self.env)
    }

    /// Stored groups that parse; one that does not (written by a newer version) is skipped.
    fn parse_stored(stored: &[StoredModelGroup]) -> BTreeMap<String, GroupFile> {
        stored
            .iter()
            .filter_map(|row| match serde_json::from_str::<GroupFile>(&row.config) {
                Ok(group) => Some((row.alias.clone(), group)),
                Err(err) => {
                    tracing::error!(alias = %row.alias, error = %err, "a stored model group cannot be read");
                    None
                }
            })
            .collect()
    }

    /// Rebuilds the gateway if the stored groups changed since the last build.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), ServiceError> {
        let revision = store.model_groups_revision().await?;
        let known = self
            .revision
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if revision.is_none() || revision == known {
            return Ok(());
        }
        let stored = Self::parse_stored(&store.model_groups().await?);
        match self.compose(&stored) {
            Ok(gateway) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(gateway);
                tracing::info!(groups = stored.len(), "stored model groups loaded");
            }
            // A group stored by another node may name a provider this node's file lacks.
            Err(err) => tracing::error!(error = %err, "stored model groups cannot be served"),
        }
        *self.revision.lock().unwrap_or_else(PoisonError::into_inner) = revision;
        Ok(())
    }

    /// Reloads every `every` until `shutdown`.
    pub async fn watch(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(err) = self.reload(store.as_ref()).await {
                        tracing::warn!(error = %err, "could not check for model group changes");
                    }
                }
                () = shutdown.cancelled() => break,
            }
        }
    }

    /// Every group, from the file and stored.
    pub async fn list(
        &self,
        keygate: &Keygate,
        caller: &Caller,
    ) -> Result<Vec<GroupView>, ServiceError> {
        keygate
            .authorize(caller, Permission::ModelsRead, None, None)
            .await?;
        let mut views: Vec<GroupView> = self
            .base
            .model_groups
            .iter()
            .map(|(alias, group)| GroupView {
                alias: alias.clone(),
                source: GroupSource::Config,
                group: group.clone(),
            })
            .collect();
        let stored = Self::parse_stored(&keygate.store().model_groups().await?);
        views.extend(stored.into_iter().map(|(alias, group)| GroupView {
            alias,
            source: GroupSource::Api,
            group,
        }));
        views.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(views)
    }

    /// Creates or replaces a stored group. It must resolve together with every other group
    /// (known providers, existing fallbacks), or nothing is stored.
    pub async fn put(
        &self,
        keygate: &Keygate,
        caller: &Caller,
        alias: &str,
        group: GroupFile,
    ) -> Result<GroupView, ServiceError> {
        keygate
            .authorize(caller, Permission::ModelsWrite, None, Some(alias))
            .await?;
        if self.base.model_groups.contains_key(alias) {
            return Err(ServiceError::DefinedInConfig {
                alias: alias.to_owned(),
            });
        }
        let store = keygate.store();
        let mut stored = Self::parse_stored(&store.model_groups().await?);
        stored.insert(alias.to_owned(), group.clone());
        let gateway = self.compose(&stored).map_err(ServiceError::ModelGroup)?;
        let config = serde_json::to_string(&group).map_err(|_| ServiceError::Random)?;
        let revision = uuid::Uuid::now_v7().to_string();
        let mut audit = caller.audit(AuditAction::ModelGroupPut, None);
        audit.target = Some(alias.to_owned());
        audit.details = serde_json::json!({
            "deployments": group.deployments.iter()
                .map(|d| format!("{}/{}", d.provider, d.model)).collect::<Vec<_>>(),
            "fallbacks": group.fallbacks,
        });
        store
            .put_model_group(alias, &config, &revision, keygate.clock().now(), &audit)
            .await?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(gateway);
        *self.revision.lock().unwrap_or_else(PoisonError::into_inner) = Some(revision);
        Ok(GroupView {
            alias: alias.to_owned(),
            source: GroupSource::Api,
            group,
        })
    }

    /// Deletes a stored group; refused while another group falls back to it.
    pub async fn delete(
        &self,
        keygate: &Keygate,
        caller: &Caller,
        alias: &str,
    ) -> Result<(), ServiceError> {
        keygate
            .authorize(caller, Permission::ModelsWrite, None, Some(alias))
            .await?;
        if self.base.model_groups.contains_key(alias) {
            return Err(ServiceError::DefinedInConfig {
                alias: alias.to_owned(),
            });
        }
        let store = keygate.store();
        let mut stored = Self::parse_stored(&store.model_groups().await?);
        if stored.remove(alias).is_none() {
            return Err(ServiceError::NotFound {
                entity: "model group",
            });
        }
        let gateway = self.compose(&stored).map_err(ServiceError::ModelGroup)?;
        let revision = uuid::Uuid::now_v7().to_string();
        let mut audit = caller.audit(AuditAction::ModelGroupDelete, None);
        audit.target = Some(alias.to_owned());
        if !store
            .delete_model_group(alias, &revision, keygate.clock().now(), &audit)
            .await?
        {
            return Err(ServiceError::NotFound {
                entity: "model group",
            });
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(gateway);
        *self.revision.lock().unwrap_or_else(PoisonError::into_inner) = Some(revision);
        Ok(())
    }
}

fn build(file: &GatewayFile, env: &BTreeMap<String, String>) -> Result<Gateway, ConfigError> {
    let config = GatewayConfig::resolve(file, &|name| env.get(name).cloned())?;
    Gateway::new(&config)
}
