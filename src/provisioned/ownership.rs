//! Whether an object that carries a provisioned name is Gatehouse's to change or delete. Pure.
//!
//! Names alone prove nothing: anyone who may create a ConfigMap or Deployment in the Gateway's
//! namespace can create `gatehouse-<gateway>` first. Adopting it would run the proxies with a
//! stranger's bootstrap, containers or Service (and mount the Gateway's xDS credential into
//! them); deleting it would destroy something Gatehouse never made. So an object is ours only
//! when it carries both marks Gatehouse writes: the managed-by label and a controlling
//! ownerReference to the very Gateway (by uid, so a Gateway deleted and recreated under the
//! same name does not inherit its predecessor's objects either).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names::MANAGED_BY;
use crate::api::GATEWAY_API_GROUP;

const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// What stands at a provisioned name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Nothing: Gatehouse may create it.
    Absent,
    /// Gatehouse's object for this Gateway; `uid` is the object's own, the precondition of
    /// every later write or delete.
    Owned { uid: String },
    /// Someone else's: never applied to, never deleted.
    Foreign,
}

/// Classifies `existing` (None when the name is free) against the Gateway with `gateway_uid`.
pub fn ownership(existing: Option<&ObjectMeta>, gateway_uid: &str) -> Ownership {
    let Some(meta) = existing else {
        return Ownership::Absent;
    };
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY);
    let controlled = !gateway_uid.is_empty()
        && meta.owner_references.iter().flatten().any(|o| {
            o.kind == "Gateway"
                && o.api_version.split('/').next() == Some(GATEWAY_API_GROUP)
                && o.uid == gateway_uid
                && o.controller == Some(true)
        });
    match &meta.uid {
        Some(uid) if labelled && controlled && !uid.is_empty() => {
            Ownership::Owned { uid: uid.clone() }
        }
        _ => Ownership::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    const GW_UID: &str = "gw-uid";

    fn meta(label: Option<&str>, owner: Option<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some("gatehouse-http".into()),
            uid: Some("obj-uid".into()),
            labels: label.map(|v| BTreeMap::from([(MANAGED_BY_LABEL.to_string(), v.to_string())])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        }
    }

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "Gateway".into(),
            name: "http".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn only_the_label_and_a_controlling_owner_reference_to_the_gateway_make_an_object_ours() {
        let owned = Ownership::Owned {
            uid: "obj-uid".into(),
        };
        assert_eq!(ownership(None, GW_UID), Ownership::Absent);
        assert_eq!(
            ownership(Some(&meta(Some("gatehouse"), Some(owner(GW_UID)))), GW_UID),
            owned
        );
        let foreign = [
            ("no marks", meta(None, None)),
            ("label only", meta(Some("gatehouse"), None)),
            ("ownerRef only", meta(None, Some(owner(GW_UID)))),
            (
                "another manager's label",
                meta(Some("helm"), Some(owner(GW_UID))),
            ),
            (
                "a predecessor Gateway of the same name",
                meta(Some("gatehouse"), Some(owner("old-uid"))),
            ),
            (
                "not the controller",
                meta(
                    Some("gatehouse"),
                    Some(OwnerReference {
                        controller: None,
                        ..owner(GW_UID)
                    }),
                ),
            ),
            (
                "another kind with the Gateway's uid",
                meta(
                    Some("gatehouse"),
                    Some(OwnerReference {
                        kind: "ConfigMap".into(),
                        ..owner(GW_UID)
                    }),
                ),
            ),
            (
                "a Gateway of another API group",
                meta(
                    Some("gatehouse"),
                    Some(OwnerReference {
                        api_version: "example.com/v1".into(),
                        ..owner(GW_UID)
                    }),
                ),
            ),
            (
                "an object without uid",
                ObjectMeta {
                    uid: None,
                    ..meta(Some("gatehouse"), Some(owner(GW_UID)))
                },
            ),
        ];
        for (why, m) in foreign {
            assert_eq!(ownership(Some(&m), GW_UID), Ownership::Foreign, "{why}");
        }
        assert_eq!(
            ownership(Some(&meta(Some("gatehouse"), Some(owner("")))), ""),
            Ownership::Foreign,
            "a Gateway without uid owns nothing"
        );
    }
}
