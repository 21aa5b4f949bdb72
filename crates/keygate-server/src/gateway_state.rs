//! The gateway a node serves: the model groups of `keygate.toml` plus those stored through
//! the admin API. A change made on this node applies at once; other nodes see the stored
//! revision change and rebuild within their reload interval.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use keygate_core::{AuditAction, Permission};
use keygate_llm::config::GroupFile;
use keygate_llm::{ConfigError, CredentialRef, Gateway, GatewayConfig, GatewayFile, SecretRef};
use keygate_store::{Store, StoredModelGroup};
use secrecy::{ExposeSecret, SecretString};
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

pub struct GatewayState {
    /// The file's tables; stored groups are added to them.
    base: GatewayFile,
    /// The values of the variables the file's `env::` credentials name, read at start; no
    /// other part of the environment is kept.
    env: BTreeMap<String, SecretString>,
    current: RwLock<Arc<Gateway>>,
    /// The stored revision the current gateway was built from.
    revision: Mutex<Option<String>>,
    /// One change to the stored groups at a time on this node.
    writer: tokio::sync::Mutex<()>,
    /// The answers groups keep (see `gateway/answer_cache.rs`).
    answers: Arc<crate::gateway::AnswerCache>,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("aliases", &self.current().aliases())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The variables that `env::` credentials in `file` name.
fn env_names(file: &GatewayFile) -> Vec<String> {
    let provider_refs = file
        .providers
        .values()
        .filter_map(|p| p.credential.as_deref());
    let deployment_refs = file
        .model_groups
        .values()
        .flat_map(|g| g.deployments.iter().filter_map(|d| d.credential.as_deref()));
    provider_refs
        .chain(deployment_refs)
        .filter_map(|text| text.strip_prefix("env::").map(str::to_owned))
        .collect()
}

impl GatewayState {
    /// The gateway of the file alone (stored groups are added by [`GatewayState::reload`]).
    /// Of `env`, only the variables the file's credentials name are kept.
    pub fn new(base: GatewayFile, env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, SecretString> = env_names(&base)
            .into_iter()
            .filter_map(|name| {
                env.get(&name)
                    .map(|value| (name, SecretString::from(value.clone())))
            })
            .collect();
        let gateway = build(&base, &env, &Gateway::empty())?;
        Ok(Self {
            base,
            env,
            current: RwLock::new(Arc::new(gateway)),
            revision: Mutex::new(None),
            writer: tokio::sync::Mutex::new(()),
            answers: Arc::default(),
        })
    }

    /// A gateway without model groups.
    pub fn empty() -> Self {
        Self {
            base: GatewayFile::default(),
            env: BTreeMap::new(),
            current: RwLock::new(Arc::new(Gateway::empty())),
            revision: Mutex::new(None),
            writer: tokio::sync::Mutex::new(()),
            answers: Arc::default(),
        }
    }

    /// The answers model groups keep on this node.
    pub fn answers(&self) -> &Arc<crate::gateway::AnswerCache> {
        &self.answers
    }

    /// The gateway to serve a request with; a reload never disturbs requests in flight.
    pub fn current(&self) -> Arc<Gateway> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The file's groups plus `stored`, keeping what the current gateway learnt.
    fn compose(&self, stored: &BTreeMap<String, GroupFile>) -> Result<Gateway, ConfigError> {
        let mut file = self.base.clone();
        for (alias, group) in stored {
            file.model_groups.insert(alias.clone(), group.clone());
        }
        build(&file, &self.env, &self.current())
    }

    fn install(&self, gateway: Gateway, revision: Option<String>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(gateway);
        *self.revision.lock().unwrap_or_else(PoisonError::into_inner) = revision;
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

    /// Rebuilds the gateway if the stored groups changed since the last build. Waits for a
    /// write in progress on this node, so an older snapshot never replaces a newer one.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), ServiceError> {
        let _writing = self.writer.lock().await;
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
                self.install(gateway, revision);
                tracing::info!(groups = stored.len(), "stored model groups loaded");
            }
            // A group stored by another node may name a provider this node's file lacks.
            Err(err) => {
                tracing::error!(error = %err, "stored model groups cannot be served");
                *self.revision.lock().unwrap_or_else(PoisonError::into_inner) = revision;
            }
        }
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
            .authorize(caller, Permission::ModelsRead, caller.bound_project(), None)
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
        self.check_credentials(keygate, caller, alias, &group)
            .await?;
        let _writing = self.writer.lock().await;
        let store = keygate.store();
        let expected = store.model_groups_revision().await?;
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
            .put_model_group(
                alias,
                &config,
                expected.as_deref(),
                &revision,
                keygate.clock().now(),
                &audit,
            )
            .await?;
        // The stored set is exactly what was checked: `expected` was still the revision.
        self.install(gateway, Some(revision));
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
        let _writing = self.writer.lock().await;
        let store = keygate.store();
        let expected = store.model_groups_revision().await?;
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
            .delete_model_group(
                alias,
                expected.as_deref(),
                &revision,
                keygate.clock().now(),
                &audit,
            )
            .await?
        {
            return Err(ServiceError::NotFound {
                entity: "model group",
            });
        }
        self.install(gateway, Some(revision));
        Ok(())
    }
}

impl GatewayState {
    /// Credentials a stored group may name: the vault secret of the calling key's project
    /// (`secret::NAME`); a fixed project's secret (`secret::PROJECT/NAME`) only when the
    /// caller could read that secret's value itself (owners); never the server's environment,
    /// which only the configuration file names.
    async fn check_credentials(
        &self,
        keygate: &Keygate,
        caller: &Caller,
        alias: &str,
        group: &GroupFile,
    ) -> Result<(), ServiceError> {
        for deployment in &group.deployments {
            let Some(text) = deployment.credential.as_deref() else {
                continue;
            };
            let field = format!("model_groups.{alias}.credential");
            match CredentialRef::parse(&field, text).map_err(ServiceError::ModelGroup)? {
                CredentialRef::Env(_) => {
                    return Err(ServiceError::ModelGroup(ConfigError::Credential {
                        field,
                        reason: "`env::` credentials are named in keygate.toml only; store the \
                                 value in the vault and name it `secret::NAME`"
                            .to_owned(),
                    }));
                }
                CredentialRef::Secret(SecretRef {
                    project: Some(_), ..
                }) => {
                    keygate
                        .authorize(caller, Permission::SecretsReveal, None, Some(alias))
                        .await?;
                }
                CredentialRef::Secret(_) | CredentialRef::None => {}
            }
        }
        Ok(())
    }
}

fn build(
    file: &GatewayFile,
    env: &BTreeMap<String, SecretString>,
    previous: &Gateway,
) -> Result<Gateway, ConfigError> {
    let config = GatewayConfig::resolve(file, &|name| {
        env.get(name).map(|v| v.expose_secret().to_owned())
    })?;
    Gateway::rebuild(&config, previous)
}
