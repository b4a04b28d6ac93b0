//! The edge that keeps provisioned objects in line with [`super::render`]: server-side apply
//! with the Gateway as controlling owner, only when the rendered object changed, and only onto
//! objects that are Gatehouse's ([`super::ownership`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gateway_api::apis::standard::gatewayclasses::GatewayClass;
use gateway_api::apis::standard::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::ca_secret::CaState;
use super::conflict::Conflict;
use super::guard::{self, Deleted};
use super::render::{ProxyObjects, XdsEndpoint, render};
use super::settings::ProxySettings;
use super::{ProvisionError, names};
use crate::model::parameters;
use crate::pki::Issued;
use crate::provisioned::{Ownership, ownership};
use crate::store::{ObjKey, Store};
use tokio::sync::watch;

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
    /// The signing CA and the trust bundle, as the CA Secret says now (it changes during a
    /// rotation: certificates of the old signer are issued again, the bundle rolls the
    /// proxies).
    ca: watch::Receiver<Arc<CaState>>,
    /// Hash of the last applied body, by (Gateway, object kind).
    applied: HashMap<(ObjKey, &'static str), String>,
    certs: HashMap<ObjKey, Issued>,
    /// Gateways left unprovisioned because objects with their provisioned names are not ours.
    conflicts: BTreeMap<ObjKey, Vec<Conflict>>,
}

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub applied: usize,
    pub failed: usize,
    /// Objects deleted because their Gateway left our classes.
    pub removed: usize,
    /// Objects that would have been deleted but are not Gatehouse's, so were left alone.
    pub spared: usize,
}

/// What provisioning one Gateway did.
enum Outcome {
    Applied(usize),
    /// Nothing applied: these objects hold provisioned names and are not ours.
    Conflicts(Vec<Conflict>),
}

/// What every provisioned kind is to the API client: namespaced, typed, encodable.
trait ProvisionedKind:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + k8s_openapi::Resource
    + Serialize
    + DeserializeOwned
    + Clone
    + std::fmt::Debug
{
}

impl<K> ProvisionedKind for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug
{
}

impl Provisioner {
    /// Changes of the CA the provisioner issues from (a rotation step).
    pub fn ca_changes(&self) -> watch::Receiver<Arc<CaState>> {
        self.ca.clone()
    }

    pub fn new(
        client: Client,
        config: ProvisionConfig,
        ca: watch::Receiver<Arc<CaState>>,
    ) -> Provisioner {
        Provisioner {
            client,
            config,
            ca,
            applied: HashMap::new(),
            certs: HashMap::new(),
            conflicts: BTreeMap::new(),
        }
    }

    /// The Gateways whose proxies are not provisioned because objects with their names are
    /// someone else's, as of the last sync.
    pub fn conflicts(&self) -> &BTreeMap<ObjKey, Vec<Conflict>> {
        &self.conflicts
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
        // Every Gateway's bootstrap is printed with one descriptor pool, dropped after the pass
        // (an error here reappears, per Gateway, from `render`).
        let _printer = crate::protojson::Printer::new().ok();
        let gateways = self.ours(store);
        let live: std::collections::HashSet<ObjKey> =
            gateways.iter().map(|(g, _)| key_of(g)).collect();
        self.certs.retain(|k, _| live.contains(k));
        self.applied.retain(|(k, _), _| live.contains(k));
        self.conflicts.retain(|k, _| live.contains(k));
        for (gateway, uid) in super::cleanup::abandoned(store, &self.config.controller_name) {
            match self.remove(&gateway, &uid).await {
                Ok((removed, spared)) => {
                    report.removed += removed;
                    report.spared += spared;
                }
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
                Ok(Outcome::Applied(n)) => {
                    report.applied += n;
                    if self.conflicts.remove(&key).is_some() {
                        tracing::info!(gateway = %key, "Gateway status changed: the objects that blocked its proxies are gone; provisioned");
                    }
                }
                Ok(Outcome::Conflicts(conflicts)) => {
                    // Logged when it changes: the recheck repeats it every few seconds.
                    if self.conflicts.get(&key) != Some(&conflicts) {
                        let objects = conflicts
                            .iter()
                            .map(Conflict::to_string)
                            .collect::<Vec<_>>()
                            .join(", ");
                        tracing::warn!(gateway = %key, %objects, status = "Programmed=False", "not provisioning the Gateway's proxies: objects with their names exist without Gatehouse's managed-by label and an ownerReference to the Gateway; they are left untouched");
                    }
                    self.conflicts.insert(key, conflicts);
                }
                // The last known conflicts stand: a failed read proves nothing either way.
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

    /// The proxies' certificate: kept while current, else issued anew. One stored in a Secret
    /// that is not ours is never reused: whoever made it may hold its key.
    async fn certificate(
        &mut self,
        key: &ObjKey,
        gateway_uid: &str,
    ) -> Result<Issued, ProvisionError> {
        let now = OffsetDateTime::now_utc();
        let ca = self.ca.borrow().clone();
        if let Some(c) = self.certs.get(key)
            && ca.signer.proxy_cert_current(&c.cert_pem, key, now)
        {
            return Ok(c.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
        let stored = api
            .get_opt(&names::tls_secret_name(&key.name))
            .await?
            .filter(|s| {
                matches!(
                    ownership(Some(&s.metadata), gateway_uid),
                    Ownership::Owned { .. }
                )
            })
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
            Some(c) if ca.signer.proxy_cert_current(&c.cert_pem, key, now) => c,
            _ => {
                tracing::info!(gateway = %key, "issuing the proxies' xDS client certificate");
                ca.signer.issue_proxy(key, now)?
            }
        };
        self.certs.insert(key.clone(), cert.clone());
        Ok(cert)
    }

    async fn sync_one(
        &mut self,
        gateway: &Gateway,
        settings: Result<ProxySettings, ProvisionError>,
    ) -> Result<Outcome, ProvisionError> {
        let key = key_of(gateway);
        let settings = settings?;
        let gateway_uid = gateway.metadata.uid.clone().unwrap_or_default();
        let cert = self.certificate(&key, &gateway_uid).await?;
        let bundle = self.ca.borrow().bundle.clone();
        let objects = render(gateway, &settings, &self.config.xds, &cert, &bundle)?;
        let ProxyObjects {
            service_account,
            tls_secret,
            config_map,
            service,
            deployment,
            pod_disruption_budget,
            horizontal_pod_autoscaler,
        } = objects;
        let name = names::proxy_name(&key.name);
        let service_account = self.pending(&key, service_account)?;
        let tls_secret = self.pending(&key, tls_secret)?;
        let config_map = self.pending(&key, config_map)?;
        let service = self.pending(&key, service)?;
        let deployment = self.pending(&key, deployment)?;
        let pdb = self.optional(&key, &name, pod_disruption_budget)?;
        let hpa = self.optional(&key, &name, horizontal_pod_autoscaler)?;
        if [
            &service_account.body,
            &tls_secret.body,
            &config_map.body,
            &service.body,
            &deployment.body,
        ]
        .iter()
        .all(|b| b.is_none())
            && !pdb.to_do()
            && !hpa.to_do()
        {
            return Ok(Outcome::Applied(0));
        }
        // Every name is checked before anything is written, not only the changed ones: the
        // Deployment mounts the ConfigMap and Secret and runs as the ServiceAccount, so one
        // foreign object among them makes the whole set unsafe to roll out.
        let ns = &key.namespace;
        let found = [
            self.read::<ServiceAccount>(ns, &service_account, &gateway_uid)
                .await?,
            self.read::<Secret>(ns, &tls_secret, &gateway_uid).await?,
            self.read::<ConfigMap>(ns, &config_map, &gateway_uid)
                .await?,
            self.read::<Service>(ns, &service, &gateway_uid).await?,
            self.read::<Deployment>(ns, &deployment, &gateway_uid)
                .await?,
            self.read_optional(ns, &pdb, &gateway_uid).await?,
            self.read_optional(ns, &hpa, &gateway_uid).await?,
        ];
        let conflicts: Vec<Conflict> = found.iter().filter_map(|(c, _)| c.clone()).collect();
        if !conflicts.is_empty() {
            return Ok(Outcome::Conflicts(conflicts));
        }
        let [sa, secret, cm, svc, deploy, pdb_found, hpa_found] = found.map(|(_, o)| o);
        // Order: what the Deployment mounts and runs as exists before it.
        let mut n = 0;
        n += self.apply(&key, service_account, &sa).await?;
        n += self.apply(&key, tls_secret, &secret).await?;
        n += self.apply(&key, config_map, &cm).await?;
        n += self.apply(&key, service, &svc).await?;
        // The replicas change hands around the Deployment's apply: an autoscaler that goes is
        // deleted before Gatehouse sets them again, and one that comes gets them only after
        // Gatehouse let go of them.
        let hpa_wanted = matches!(hpa, Optional::Wanted(_));
        let (hpa_before, hpa_after) = if hpa_wanted {
            (None, Some(hpa))
        } else {
            (Some(hpa), None)
        };
        if let Some(hpa) = hpa_before {
            n += self.settle(&key, hpa, &hpa_found, &gateway_uid).await?;
        }
        if let (true, Some(_), Ownership::Owned { uid }) = (hpa_wanted, &deployment.body, &deploy) {
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
            guard::release_replicas(&api, &name, uid).await?;
        }
        n += self.apply(&key, deployment, &deploy).await?;
        n += self.settle(&key, pdb, &pdb_found, &gateway_uid).await?;
        if let Some(hpa) = hpa_after {
            n += self.settle(&key, hpa, &hpa_found, &gateway_uid).await?;
        }
        Ok(Outcome::Applied(n))
    }

    /// `object` with its encoded body when that differs from what was last applied.
    fn pending<K>(&self, key: &ObjKey, object: K) -> Result<Pending<K>, ProvisionError>
    where
        K: k8s_openapi::Resource + Serialize,
    {
        let body =
            serde_json::to_string(&object).map_err(|e| ProvisionError::Encode(e.to_string()))?;
        let slot = (key.clone(), <K as k8s_openapi::Resource>::KIND);
        let body = (self.applied.get(&slot) != Some(&body)).then_some(body);
        Ok(Pending { object, body })
    }

    /// An object rendered only on request: pending like the others when rendered, else to be
    /// deleted unless that was done since the last [`Self::forget`].
    fn optional<K>(
        &self,
        key: &ObjKey,
        name: &str,
        object: Option<K>,
    ) -> Result<Optional<K>, ProvisionError>
    where
        K: k8s_openapi::Resource + Serialize,
    {
        Ok(match object {
            Some(object) => Optional::Wanted(self.pending(key, object)?),
            None => {
                let slot = (key.clone(), <K as k8s_openapi::Resource>::KIND);
                Optional::Unwanted {
                    name: name.to_string(),
                    check: self.applied.get(&slot).map(String::as_str) != Some(ABSENT),
                }
            }
        })
    }

    /// [`Self::read`] for a rendered optional object; nothing to read for one to delete (the
    /// delete reads it, and spares it unless it is ours).
    async fn read_optional<K>(
        &self,
        namespace: &str,
        optional: &Optional<K>,
        gateway_uid: &str,
    ) -> Result<(Option<Conflict>, Ownership), ProvisionError>
    where
        K: ProvisionedKind,
    {
        match optional {
            Optional::Wanted(pending) => self.read(namespace, pending, gateway_uid).await,
            Optional::Unwanted { .. } => Ok((None, Ownership::Absent)),
        }
    }

    /// Applies a rendered optional object, or deletes one no longer asked for.
    async fn settle<K>(
        &mut self,
        key: &ObjKey,
        optional: Optional<K>,
        found: &Ownership,
        gateway_uid: &str,
    ) -> Result<usize, ProvisionError>
    where
        K: ProvisionedKind,
    {
        let name = match optional {
            Optional::Wanted(pending) => return self.apply(key, pending, found).await,
            Optional::Unwanted { check: false, .. } => return Ok(0),
            Optional::Unwanted { name, check: true } => name,
        };
        let kind = <K as k8s_openapi::Resource>::KIND;
        if self.delete::<K>(key, &name, gateway_uid).await? == Deleted::Gone {
            tracing::info!(gateway = %key, %kind, %name, "deleted a provisioned object its GatewayParameters no longer ask for");
        }
        self.applied.insert((key.clone(), kind), ABSENT.to_string());
        Ok(0)
    }

    /// Whose the object at `pending`'s name is; a conflict when it is not ours.
    async fn read<K>(
        &self,
        namespace: &str,
        pending: &Pending<K>,
        gateway_uid: &str,
    ) -> Result<(Option<Conflict>, Ownership), ProvisionError>
    where
        K: ProvisionedKind,
    {
        let name = pending.object.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let found = guard::read(&api, &name, gateway_uid).await?;
        let conflict = (found == Ownership::Foreign).then_some(Conflict {
            kind: <K as k8s_openapi::Resource>::KIND,
            name,
        });
        Ok((conflict, found))
    }

    /// Deletes the objects provisioned for `gateway` (uid `gateway_uid`); returns how many were
    /// deleted and how many objects with those names were left because they are not ours.
    async fn remove(
        &mut self,
        gateway: &ObjKey,
        gateway_uid: &str,
    ) -> Result<(usize, usize), ProvisionError> {
        let name = names::proxy_name(&gateway.name);
        let secret = names::tls_secret_name(&gateway.name);
        // The autoscaler before what it scales, then the Deployment: its pods use everything else.
        let outcomes = [
            self.delete::<HorizontalPodAutoscaler>(gateway, &name, gateway_uid)
                .await?,
            self.delete::<PodDisruptionBudget>(gateway, &name, gateway_uid)
                .await?,
            self.delete::<Deployment>(gateway, &name, gateway_uid)
                .await?,
            self.delete::<Service>(gateway, &name, gateway_uid).await?,
            self.delete::<ConfigMap>(gateway, &name, gateway_uid)
                .await?,
            self.delete::<Secret>(gateway, &secret, gateway_uid).await?,
            self.delete::<ServiceAccount>(gateway, &name, gateway_uid)
                .await?,
        ];
        self.certs.remove(gateway);
        let count = |d: Deleted| outcomes.iter().filter(|o| **o == d).count();
        let (removed, spared) = (count(Deleted::Gone), count(Deleted::Foreign));
        tracing::info!(%gateway, objects = removed, "removed the proxies of a Gateway that left our classes");
        Ok((removed, spared))
    }

    async fn delete<K>(
        &self,
        gateway: &ObjKey,
        name: &str,
        gateway_uid: &str,
    ) -> Result<Deleted, ProvisionError>
    where
        K: ProvisionedKind,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &gateway.namespace);
        let outcome = guard::delete(&api, name, gateway_uid).await?;
        if outcome == Deleted::Foreign {
            tracing::warn!(%gateway, kind = <K as k8s_openapi::Resource>::KIND, %name, "not deleting an object with a provisioned name: it lacks Gatehouse's managed-by label or an ownerReference to the Gateway");
        }
        Ok(outcome)
    }

    async fn apply<K>(
        &mut self,
        key: &ObjKey,
        pending: Pending<K>,
        found: &Ownership,
    ) -> Result<usize, ProvisionError>
    where
        K: ProvisionedKind,
    {
        let Pending { object, body } = pending;
        let Some(body) = body else {
            return Ok(0);
        };
        let name = object.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
        guard::write(&api, object, found).await?;
        tracing::info!(gateway = %key, kind = <K as k8s_openapi::Resource>::KIND, %name, "applied provisioned object");
        self.applied
            .insert((key.clone(), <K as k8s_openapi::Resource>::KIND), body);
        Ok(1)
    }
}

/// What [`Provisioner::applied`] holds for an optional object known not to exist.
const ABSENT: &str = "";

/// An object provisioned only when the GatewayParameters ask for it.
enum Optional<K> {
    Wanted(Pending<K>),
    /// Not rendered: `name` is deleted if Gatehouse's; `check` is false once that was done.
    Unwanted {
        name: String,
        check: bool,
    },
}

impl<K> Optional<K> {
    fn to_do(&self) -> bool {
        match self {
            Optional::Wanted(p) => p.body.is_some(),
            Optional::Unwanted { check, .. } => *check,
        }
    }
}

/// A rendered object; `body` is its encoding when it must be applied (None: unchanged since
/// the last apply).
struct Pending<K> {
    object: K,
    body: Option<String>,
}

fn key_of(gateway: &Gateway) -> ObjKey {
    ObjKey::new(
        gateway.metadata.namespace.clone().unwrap_or_default(),
        gateway.metadata.name.clone().unwrap_or_default(),
    )
}
