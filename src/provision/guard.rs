//! Writes and deletes that can only reach Gatehouse's own objects: every one carries a
//! precondition on the object Gatehouse read, so an object replaced in between (deleted and
//! created again by someone else under the same name) is refused by the API server instead of
//! taken over or deleted.

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::FIELD_MANAGER;
use crate::provisioned::{Ownership, ownership};

/// What a guarded delete did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    Gone,
    /// Nothing by that name.
    Absent,
    /// Someone else's object; left alone.
    Foreign,
}

/// The object at `name` and whose it is.
pub async fn read<K>(api: &Api<K>, name: &str, gateway_uid: &str) -> Result<Ownership, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let found = api.get_opt(name).await?;
    let ours = ownership(found.as_ref().map(|o| o.meta()), gateway_uid);
    if let (Ownership::Owned { .. }, Some(found)) = (&ours, &found) {
        hand_over(api, found).await?;
    }
    Ok(ours)
}

/// Writes `object` where [`read`] found `found`; never called for a foreign object.
pub async fn write<K>(api: &Api<K>, mut object: K, found: &Ownership) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Serialize
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.name_any();
    match found {
        // Server-side apply creates a missing object but cannot be told to create only: an
        // object created by someone else between the read and the apply would be taken over.
        // A create fails on it instead (409), and the next sync finds it foreign.
        Ownership::Absent => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            let created = api.create(&params, &object).await?;
            hand_over(api, &created).await
        }
        // The uid in an applied object is a precondition: another object at this name fails
        // the apply (422, uid is immutable) rather than being forced into ours.
        Ownership::Owned { uid } => {
            object.meta_mut().uid = Some(uid.clone());
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map(drop)
        }
        Ownership::Foreign => Ok(()),
    }
}

/// Deletes `name` only if it is Gatehouse's object for the Gateway with `gateway_uid`, and only
/// that very object (uid precondition).
pub async fn delete<K>(api: &Api<K>, name: &str, gateway_uid: &str) -> Result<Deleted, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let found = api.get_opt(name).await?;
    let uid = match ownership(found.as_ref().map(|o| o.meta()), gateway_uid) {
        Ownership::Absent => return Ok(Deleted::Absent),
        Ownership::Foreign => return Ok(Deleted::Foreign),
        Ownership::Owned { uid } => uid,
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Deleted::Gone),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Deleted::Absent),
        // The precondition failed: the name now holds another object. The next sync reads it.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Deleted::Foreign),
        Err(e) => Err(e),
    }
}

/// Server-side apply field manager that holds a Deployment's `replicas` while Gatehouse lets
/// go of them (see [`release_replicas`]).
pub const REPLICAS_HANDOVER_MANAGER: &str = "gatehouse-replicas-handover";

/// Lets go of the `replicas` of Gatehouse's Deployment `name` (uid `uid`) without changing
/// them, before an apply that leaves them out because an autoscaler now owns them. An apply
/// that drops a field only Gatehouse owns removes it, and the Deployment would fall back to 1
/// replica until the autoscaler scales it up again; so another manager first applies the
/// current value, the handover of Kubernetes' "transferring ownership" (the autoscaler's
/// first scale write then takes the field from it).
pub async fn release_replicas(
    api: &Api<k8s_openapi::api::apps::v1::Deployment>,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let Some(found) = api.get_opt(name).await? else {
        return Ok(());
    };
    let ours = found
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER) && e.subresource.is_none())
        .any(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        });
    let replicas = found.spec.as_ref().and_then(|s| s.replicas);
    let (true, Some(replicas)) = (ours, replicas) else {
        return Ok(());
    };
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "uid": uid},
        "spec": {"replicas": replicas},
    });
    api.patch(
        name,
        &PatchParams::apply(REPLICAS_HANDOVER_MANAGER),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
}

/// A create records its fields under an `Update` entry of the field manager, which later
/// applies do not replace: a field dropped from the rendered object (a label removed from a
/// GatewayParameters) would stay forever. Renaming that entry to `Apply` hands those fields to
/// the applies, as client-go's csaupgrade does. Conditional on the resourceVersion read, so it
/// never rewrites an object that changed meanwhile.
async fn hand_over<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let meta = object.meta();
    let mut entries = meta.managed_fields.clone().unwrap_or_default();
    let ours = |m: &str| m == FIELD_MANAGER;
    let applied = entries
        .iter()
        .any(|e| e.manager.as_deref().is_some_and(ours) && e.operation.as_deref() == Some("Apply"));
    let mut changed = false;
    for e in &mut entries {
        if !applied
            && e.manager.as_deref().is_some_and(ours)
            && e.operation.as_deref() == Some("Update")
            && e.subresource.is_none()
        {
            e.operation = Some("Apply".into());
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    let patch = json!({
        "metadata": {
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
            "managedFields": entries,
        }
    });
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}
