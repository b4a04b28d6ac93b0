//! Where the xDS CA lives: a Secret in the controller's namespace, created by whichever replica
//! gets there first and read by all.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use time::OffsetDateTime;

use super::ProvisionError;
use crate::pki::Ca;

const CERT: &str = "ca.crt";
const KEY: &str = "ca.key";

fn from_secret(secret: &Secret) -> Option<Result<Ca, ProvisionError>> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let (cert, key) = (text(CERT)?, text(KEY)?);
    Some(Ca::from_pem(&cert, &key).map_err(ProvisionError::from))
}

/// The CA stored in `namespace/name`, created when absent. A Secret that exists but holds no
/// usable CA is an error, not something to overwrite: proxies may trust it.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Ca, ProvisionError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..3 {
        if let Some(secret) = api.get_opt(name).await? {
            return from_secret(&secret).unwrap_or_else(|| {
                Err(ProvisionError::Parameters(format!(
                    "Secret {namespace}/{name} exists but lacks {CERT} and {KEY}"
                )))
            });
        }
        let ca = Ca::generate(OffsetDateTime::now_utc())?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    super::MANAGED_BY.to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                (
                    CERT.to_string(),
                    ByteString(ca.pem().cert_pem.clone().into_bytes()),
                ),
                (
                    KEY.to_string(),
                    ByteString(ca.pem().key_pem.clone().into_bytes()),
                ),
            ])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %format!("{namespace}/{name}"), "created the xDS CA");
                return Ok(ca);
            }
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProvisionError::Parameters(format!(
        "Secret {namespace}/{name}: lost the creation race three times"
    )))
}
