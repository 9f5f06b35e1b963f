//! The registry side of the mirror: registered models, their versions and
//! aliases, each read before it is written (see `mirror.rs` for the whole
//! sequence).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::mirror::{Mirror, MirrorError, bad, next_page_token, tag};
use super::source::{StoredAliases, StoredVersion, registered_model_name};
use crate::layout::Alias;

impl Mirror<'_> {
    /// Creates the registered model if missing; returns its MLflow versions
    /// by store version (their `stockcast.version` tag). Registered models
    /// are global to a server, so matching by the store's version, not by
    /// run, keeps a store mirrored into two experiments from doubling them.
    pub(super) async fn ensure_registered_model(
        &mut self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, MirrorError> {
        if name.contains(['/', ':']) {
            return Err(MirrorError::InvalidName {
                name: name.to_owned(),
            });
        }
        match self
            .client
            .get("registered-models/get", &[("name", name)])
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                self.client
                    .post(
                        "registered-models/create",
                        &json!({
                            "name": name,
                            "description": "Mirrored by stockcast from its registry (the store is the source of truth).",
                        }),
                    )
                    .await?;
                self.counts.registered_models += 1;
                return Ok(BTreeMap::new());
            }
            Err(e) => return Err(e.into()),
        }
        let mut by_version = BTreeMap::new();
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "1000")];
            if let Some(token) = &page_token {
                query.push(("page_token", token));
            }
            let page = self.client.get("model-versions/search", &query).await?;
            for v in page
                .get("model_versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let stored = v.get("tags").and_then(|t| tag(t, "stockcast.version"));
                if let (Some(stored), Some(number)) =
                    (stored, v.get("version").and_then(Value::as_str))
                {
                    by_version.insert(stored.to_owned(), number.to_owned());
                }
            }
            page_token = next_page_token(&page);
            if page_token.is_none() {
                return Ok(by_version);
            }
        }
    }

    pub(super) async fn create_version(
        &mut self,
        name: &str,
        version: &StoredVersion,
        run: &str,
    ) -> Result<String, MirrorError> {
        let created = self
            .client
            .post(
                "model-versions/create",
                &json!({
                    "name": name,
                    "source": format!("runs:/{run}/model"),
                    "run_id": run,
                    "description": format!(
                        "stockcast version {} of {} {}, data through {}",
                        version.version,
                        version.symbol,
                        version.model,
                        version.lineage.data_through.map_or("?".to_owned(), |d| d.to_string())
                    ),
                    "tags": [{"key": "stockcast.version", "value": version.version}],
                }),
            )
            .await?;
        self.counts.model_versions += 1;
        created
            .pointer("/model_version/version")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad("model-versions/create"))
    }

    /// Makes the model's aliases equal to the store's; returns production's
    /// (name, MLflow version, URL) if there is one.
    pub(super) async fn mirror_aliases(
        &mut self,
        stored: &StoredAliases,
        numbers: &BTreeMap<String, String>,
    ) -> Result<Option<(String, String, String)>, MirrorError> {
        let name = registered_model_name(&stored.symbol, stored.model);
        let model = self
            .client
            .get("registered-models/get", &[("name", &name)])
            .await?;
        let current: BTreeMap<String, String> = model
            .pointer("/registered_model/aliases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    a.get("alias")?.as_str()?.to_owned(),
                    a.get("version")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        let mut production = None;
        // Production first: it is the one that must be right.
        for kind in Alias::ALL {
            let alias = kind.name();
            let wanted = match stored.aliases.get(&kind) {
                Some(version) => Some(numbers.get(version.as_str()).cloned().ok_or_else(|| {
                    MirrorError::AliasTarget {
                        name: name.clone(),
                        alias: alias.to_owned(),
                        version: version.to_string(),
                    }
                })?),
                None => None,
            };
            match (&wanted, current.get(alias)) {
                (Some(w), Some(c)) if w == c => {}
                (Some(w), _) => {
                    self.client
                        .post(
                            "registered-models/alias",
                            &json!({"name": name, "alias": alias, "version": w}),
                        )
                        .await?;
                    self.counts.aliases_set += 1;
                }
                (None, Some(_)) => {
                    self.client
                        .delete(
                            "registered-models/alias",
                            &json!({"name": name, "alias": alias}),
                        )
                        .await?;
                    self.counts.aliases_removed += 1;
                }
                (None, None) => {}
            }
            if kind == Alias::Production
                && let Some(w) = wanted
            {
                let url = self.client.version_url(&name, &w);
                production = Some((name.clone(), w, url));
            }
        }
        Ok(production)
    }
}
