//! The edge that keeps provisioned objects in line with [`super::render`]: server-side apply
//! with the Gateway as controlling owner, only when the rendered object changed.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_api::apis::standard::gatewayclasses::GatewayClass;
use gateway_api::apis::standard::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::render::{ProxyObjects, XdsEndpoint, render};
use super::settings::ProxySettings;
use super::{ProvisionError, names};
use crate::model::parameters;
use crate::pki::{Ca, Issued};
use crate::store::{ObjKey, Store};

/// Field manager of every provisioned object.
pub const FIELD_MANAGER: &str = "gatehouse";

/// Settings that do not change while the controller runs.
#[derive(Clone, Debug)]
pub struct ProvisionConfig {
    pub controller_name: String,
    pub defaults: ProxySettings,
    pub xds: XdsEndpoint,
}

/// Provisions proxies for every Gateway of our classes.
pub struct Provisioner {
    client: Client,
    config: ProvisionConfig,
    ca: Arc<Ca>,
    /// Hash of the last applied body, by (Gateway, object kind).
    applied: HashMap<(ObjKey, &'static str), String>,
    certs: HashMap<ObjKey, Issued>,
}

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub applied: usize,
    pub failed: usize,
    /// Objects deleted because their Gateway left our classes.
    pub removed: usize,
}

impl Provisioner {
    pub fn new(client: Client, config: ProvisionConfig, ca: Arc<Ca>) -> Provisioner {
        Provisioner {
            client,
            config,
            ca,
            applied: HashMap::new(),
            certs: HashMap::new(),
        }
    }

    /// Forgets what was applied, so the next sync re-applies everything (repairs objects
    /// someone edited or deleted).
    pub fn forget(&mut self) {
        self.applied.clear();
    }

    /// The Gateways of our classes.
    fn ours(&self, store: &Store) -> Vec<(Gateway, GatewayClass)> {
        store
            .gateways
            .values()
            .filter_map(|gw| {
                let class = store
                    .gateway_classes
                    .get(&ObjKey::cluster(gw.spec.gateway_class_name.clone()))?;
                (class.spec.controller_name == self.config.controller_name)
                    .then(|| (gw.clone(), class.clone()))
            })
            .collect()
    }

    /// Applies what changed for every Gateway of ours; a failing Gateway is logged and left
    /// as it was, and never stops the others.
    pub async fn sync(&mut self, store: &Store) -> SyncReport {
        let mut report = SyncReport::default();
        let gateways = self.ours(store);
        let live: std::collections::HashSet<ObjKey> =
            gateways.iter().map(|(g, _)| key_of(g)).collect();
        self.certs.retain(|k, _| live.contains(k));
        self.applied.retain(|(k, _), _| live.contains(k));
        for gateway in super::cleanup::abandoned(store, &self.config.controller_name) {
            match self.remove(&gateway).await {
                Ok(n) => report.removed += n,
                Err(error) => {
                    report.failed += 1;
                    tracing::error!(%gateway, %error, "cannot remove the proxies of a Gateway that left our classes");
                }
            }
        }
        for (gateway, class) in gateways {
            let key = key_of(&gateway);
            let settings = self.settings(store, &gateway, &class);
            match self.sync_one(&gateway, settings).await {
                Ok(n) => report.applied += n,
                Err(error) => {
                    report.failed += 1;
                    tracing::error!(gateway = %key, %error, "cannot provision the Gateway's proxies; its existing objects are left as they are");
                }
            }
        }
        report
    }

    /// Defaults, then the class's GatewayParameters, then the Gateway's.
    fn settings(
        &self,
        store: &Store,
        gateway: &Gateway,
        class: &GatewayClass,
    ) -> Result<ProxySettings, ProvisionError> {
        let mut settings = self.config.defaults.clone();
        let class_params =
            parameters::of_class(store, class).map_err(ProvisionError::Parameters)?;
        let gateway_params = parameters::of_gateway(store, &key_of(gateway), gateway)
            .map_err(ProvisionError::Parameters)?;
        for p in class_params.into_iter().chain(gateway_params) {
            settings.apply(&p.spec);
        }
        Ok(settings)
    }

    /// The proxies' certificate: kept while current, else issued anew.
    async fn certificate(&mut self, key: &ObjKey) -> Result<Issued, ProvisionError> {
        let now = OffsetDateTime::now_utc();
        if let Some(c) = self.certs.get(key)
            && self.ca.proxy_cert_current(&c.cert_pem, key, now)
        {
            return Ok(c.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
        let stored = api
            .get_opt(&names::tls_secret_name(&key.name))
            .await?
            .and_then(|s| {
                let data = s.data?;
                let text = |k: &str| {
                    data.get(k)
                        .and_then(|b| String::from_utf8(b.0.clone()).ok())
                };
                Some(Issued {
                    cert_pem: text("tls.crt")?,
                    key_pem: text("tls.key")?,
                })
            });
        let cert = match stored {
            Some(c) if self.ca.proxy_cert_current(&c.cert_pem, key, now) => c,
            _ => {
                tracing::info!(gateway = %key, "issuing the proxies' xDS client certificate");
                self.ca.issue_proxy(key, now)?
            }
        };
        self.certs.insert(key.clone(), cert.clone());
        Ok(cert)
    }

    async fn sync_one(
        &mut self,
        gateway: &Gateway,
        settings: Result<ProxySettings, ProvisionError>,
    ) -> Result<usize, ProvisionError> {
        let key = key_of(gateway);
        let settings = settings?;
        let cert = self.certificate(&key).await?;
        let objects = render(
            gateway,
            &settings,
            &self.config.xds,
            &cert,
            &self.ca.pem().cert_pem,
        )?;
        let ProxyObjects {
            service_account,
            tls_secret,
            config_map,
            service,
            deployment,
        } = objects;
        // Order: what the Deployment mounts and runs as exists before it.
        let mut n = 0;
        n += self.apply(&key, service_account).await?;
        n += self.apply(&key, tls_secret).await?;
        n += self.apply(&key, config_map).await?;
        n += self.apply(&key, service).await?;
        n += self.apply(&key, deployment).await?;
        Ok(n)
    }

    /// Deletes the objects provisioned for `gateway`; returns how many existed.
    async fn remove(&mut self, gateway: &ObjKey) -> Result<usize, ProvisionError> {
        let name = names::proxy_name(&gateway.name);
        // The Deployment first: its pods use everything else.
        let mut n = self.delete::<Deployment>(gateway, &name).await?;
        n += self.delete::<Service>(gateway, &name).await?;
        n += self.delete::<ConfigMap>(gateway, &name).await?;
        n += self
            .delete::<Secret>(gateway, &names::tls_secret_name(&gateway.name))
            .await?;
        n += self.delete::<ServiceAccount>(gateway, &name).await?;
        self.certs.remove(gateway);
        tracing::info!(%gateway, objects = n, "removed the proxies of a Gateway that left our classes");
        Ok(n)
    }

    async fn delete<K>(&self, gateway: &ObjKey, name: &str) -> Result<usize, ProvisionError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &gateway.namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(1),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    async fn apply<K>(&mut self, key: &ObjKey, object: K) -> Result<usize, ProvisionError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + k8s_openapi::Resource
            + Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let body =
            serde_json::to_string(&object).map_err(|e| ProvisionError::Encode(e.to_string()))?;
        let slot = (key.clone(), <K as k8s_openapi::Resource>::KIND);
        if self.applied.get(&slot) == Some(&body) {
            return Ok(0);
        }
        let name = object.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await?;
        tracing::info!(gateway = %key, kind = <K as k8s_openapi::Resource>::KIND, %name, "applied provisioned object");
        self.applied.insert(slot, body);
        Ok(1)
    }
}

fn key_of(gateway: &Gateway) -> ObjKey {
    ObjKey::new(
        gateway.metadata.namespace.clone().unwrap_or_default(),
        gateway.metadata.name.clone().unwrap_or_default(),
    )
}
