//! Gateway API BackendTLSPolicy: TLS from Envoy to a Service port (route backends and auth
//! services alike), validated with a CA bundle from ConfigMaps or the system's roots, against
//! `hostname` (also the SNI) or the `subjectAltNames`.
//!
//! A policy that cannot be honoured never turns into plaintext: the Service port it targets is
//! unusable while it is invalid (a route's share answers 500, an auth provider fails closed).

use std::sync::Arc;

use gateway_api::apis::standard::backendtlspolicies::{
    BackendTlsPolicy, BackendTlsPolicyValidationSubjectAltNamesType as SanType,
};
use k8s_openapi::api::core::v1::ServicePort;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::conditions::{AncestorRef, Condition, PolicyAncestorStatus};
use super::types::{SanMatch, UpstreamTls};
use crate::model::condition_names as cond;
use crate::store::{ObjKey, Store};

/// The ConfigMap key a CA bundle is read from (Gateway API: `ca.crt`).
pub const CA_KEY: &str = "ca.crt";

/// Why a policy cannot be used: (Accepted reason, ResolvedRefs reason or none, message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub accepted: &'static str,
    pub resolved_refs: Option<&'static str>,
    pub message: String,
}

/// The policy deciding TLS to `service`'s `port`, if any: the one naming the port's
/// `sectionName` over one naming the whole Service, then the oldest, then by name.
pub fn deciding<'s>(
    store: &'s Store,
    service: &ObjKey,
    port: &ServicePort,
) -> Option<(&'s ObjKey, &'s BackendTlsPolicy)> {
    ranked(store, service, port.name.as_deref())
        .into_iter()
        .next()
        .map(|(_, k, p)| (k, p))
}

/// Every policy targeting the Service port, the deciding one first, each with whether it names
/// the port (`sectionName`) rather than the whole Service.
fn ranked<'s>(
    store: &'s Store,
    service: &ObjKey,
    port_name: Option<&str>,
) -> Vec<(bool, &'s ObjKey, &'s BackendTlsPolicy)> {
    let mut found: Vec<(bool, &ObjKey, &BackendTlsPolicy)> = store
        .backend_tls_policies
        .iter()
        .filter(|(key, _)| key.namespace == service.namespace)
        .filter_map(|(key, p)| {
            let specific = service_refs(p)
                .filter(|t| t.name == service.name)
                .filter_map(|t| match t.section_name.as_deref() {
                    None => Some(false),
                    Some(s) if Some(s) == port_name => Some(true),
                    Some(_) => None,
                })
                .max()?;
            Some((specific, key, p))
        })
        .collect();
    found.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| created(a.2).cmp(&created(b.2)))
            .then_with(|| a.1.cmp(b.1))
    });
    found
}

/// The policy's targetRefs that name core Services (the only kind it may target here).
fn service_refs(
    policy: &BackendTlsPolicy,
) -> impl Iterator<Item = &gateway_api::apis::standard::backendtlspolicies::BackendTlsPolicyTargetRefs>
{
    policy
        .spec
        .target_refs
        .iter()
        .filter(|t| is_core(&t.group) && t.kind == "Service")
}

/// The core API group, as references write it (`""`, or `core` as backendRefs accept).
fn is_core(group: &str) -> bool {
    group.is_empty() || group == "core"
}

/// A targetRef of `policy` naming a `sectionName` that no port of its Service has: the policy
/// cannot say which port it protects, so none of them is used in plaintext.
fn dangling_section(store: &Store, key: &ObjKey, policy: &BackendTlsPolicy) -> Option<String> {
    service_refs(policy).find_map(|t| {
        let section = t.section_name.as_deref()?;
        let svc = store
            .services
            .get(&ObjKey::new(key.namespace.clone(), t.name.clone()))?;
        let named = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .any(|p| p.name.as_deref() == Some(section));
        (!named).then(|| format!("Service {} has no port named {section:?}", t.name))
    })
}

fn created(p: &BackendTlsPolicy) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    p.metadata.creation_timestamp.as_ref()
}

/// TLS to `service`'s `port`: `Ok(None)` without a policy; an error when the deciding policy
/// is invalid, so the port is never used in plaintext.
pub fn for_port(
    store: &Store,
    service: &ObjKey,
    port: &ServicePort,
) -> Result<Option<Arc<UpstreamTls>>, String> {
    for (key, policy) in store
        .backend_tls_policies
        .iter()
        .filter(|(k, _)| k.namespace == service.namespace)
    {
        if let Some(why) = dangling_section(store, key, policy)
            .filter(|_| service_refs(policy).any(|t| t.name == service.name))
        {
            return Err(format!(
                "BackendTLSPolicy {key} targets Service {service} but {why}; no port of it is reached until the policy names one"
            ));
        }
    }
    let Some((key, policy)) = deciding(store, service, port) else {
        return Ok(None);
    };
    upstream_tls(store, key, policy)
        .map(|t| Some(Arc::new(t)))
        .map_err(|e| {
            format!(
                "BackendTLSPolicy {key} for Service {service} cannot be used ({}); the Service is not reached without it",
                e.message
            )
        })
}

/// What Envoy needs to validate the backend as `policy` says.
pub fn upstream_tls(
    store: &Store,
    key: &ObjKey,
    policy: &BackendTlsPolicy,
) -> Result<UpstreamTls, Invalid> {
    let v = &policy.spec.validation;
    let invalid = |accepted, resolved_refs, message: String| Invalid {
        accepted,
        resolved_refs,
        message,
    };
    if let Some(options) = policy.spec.options.as_ref().filter(|o| !o.is_empty()) {
        let names: Vec<&str> = options.keys().map(String::as_str).collect();
        return Err(invalid(
            cond::INVALID,
            None,
            format!("options {} are not supported", names.join(", ")),
        ));
    }
    let refs = v.ca_certificate_refs.as_deref().unwrap_or_default();
    let ca_pem = match (refs.is_empty(), v.well_known_ca_certificates.as_deref()) {
        (true, Some("System")) => {
            // Envoy 1.40 does not implement `system_root_certs` for TLS clusters, and a path
            // to a bundle depends on the proxy image: refused rather than a guess.
            return Err(invalid(
                cond::INVALID,
                None,
                "wellKnownCACertificates System is not supported; put the CA bundle in a ConfigMap and use caCertificateRefs".into(),
            ));
        }
        (true, Some(other)) => {
            return Err(invalid(
                cond::INVALID,
                None,
                format!("wellKnownCACertificates {other} is not supported; use System"),
            ));
        }
        (true, None) => {
            return Err(invalid(
                cond::INVALID,
                None,
                "validation needs caCertificateRefs or wellKnownCACertificates".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(invalid(
                cond::INVALID,
                None,
                "caCertificateRefs and wellKnownCACertificates exclude each other".into(),
            ));
        }
        (false, None) => {
            let mut bundle = String::new();
            for r in refs {
                if !r.group.is_empty() || r.kind != "ConfigMap" {
                    return Err(invalid(
                        cond::NO_VALID_CA_CERTIFICATE,
                        Some(cond::INVALID_KIND),
                        format!(
                            "caCertificateRef {}/{} {}: only ConfigMaps hold CA bundles",
                            r.group, r.kind, r.name
                        ),
                    ));
                }
                let cm_key = ObjKey::new(key.namespace.clone(), r.name.clone());
                let pem = ca_bundle(store, &cm_key).map_err(|why| {
                    invalid(
                        cond::NO_VALID_CA_CERTIFICATE,
                        Some(cond::INVALID_CA_CERTIFICATE_REF),
                        format!("ConfigMap {cm_key}: {why}"),
                    )
                })?;
                bundle.push_str(&pem);
            }
            bundle
        }
    };
    if !crate::api::is_dns_subdomain(&v.hostname) {
        return Err(invalid(
            cond::INVALID,
            None,
            format!(
                "hostname {:?} is not a DNS name (it is sent as the SNI)",
                v.hostname
            ),
        ));
    }
    let subject_alt_names = v
        .subject_alt_names
        .iter()
        .flatten()
        .map(|s| match (&s.r#type, &s.hostname, &s.uri) {
            (SanType::Hostname, Some(h), _) => Ok(SanMatch::Dns(h.clone())),
            (SanType::Uri, _, Some(u)) => Ok(SanMatch::Uri(u.clone())),
            _ => Err(invalid(
                cond::INVALID,
                None,
                "a subjectAltName lacks the value its type names".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UpstreamTls {
        policy: key.clone(),
        sni: v.hostname.clone(),
        ca_pem,
        subject_alt_names,
    })
}

/// The PEM certificates under `ca.crt`, each parsed; re-encoded so Envoy gets only those.
pub(super) fn ca_bundle(store: &Store, key: &ObjKey) -> Result<String, String> {
    let cm = store
        .config_maps
        .get(key)
        .ok_or_else(|| "does not exist".to_string())?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CA_KEY))
        .ok_or_else(|| format!("has no {CA_KEY}"))?;
    let blocks =
        pem::parse_many(text.as_bytes()).map_err(|e| format!("{CA_KEY} is not PEM: {e}"))?;
    let certs: Vec<pem::Pem> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .collect();
    if certs.is_empty() {
        return Err(format!("{CA_KEY} holds no CERTIFICATE"));
    }
    for (i, c) in certs.iter().enumerate() {
        X509Certificate::from_der(c.contents())
            .map_err(|e| format!("certificate {i} of {CA_KEY} does not parse: {e}"))?;
    }
    Ok(pem::encode_many_config(
        &certs,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

fn invalid(
    accepted: &'static str,
    resolved_refs: Option<&'static str>,
    message: String,
) -> Invalid {
    Invalid {
        accepted,
        resolved_refs,
        message,
    }
}

/// Every policy's status, for the Gateways in `ancestors(service)` (those with routes or
/// providers using a Service the policy targets).
pub fn statuses(
    store: &Store,
    ancestors: impl Fn(&ObjKey) -> Vec<ObjKey>,
) -> std::collections::BTreeMap<ObjKey, Arc<Vec<PolicyAncestorStatus>>> {
    let mut out = std::collections::BTreeMap::new();
    for (key, policy) in &store.backend_tls_policies {
        let mut conditions = Vec::new();
        let targets: Vec<ObjKey> = service_refs(policy)
            .map(|t| ObjKey::new(key.namespace.clone(), t.name.clone()))
            .collect();
        let conflicted = targets.iter().any(|svc| loses(store, key, svc));
        let resolved = match dangling_section(store, key, policy) {
            Some(why) => Err(invalid(cond::TARGET_NOT_FOUND, None, why)),
            None => upstream_tls(store, key, policy),
        };
        match resolved {
            Ok(_) if conflicted => {
                conditions.push(Condition::fail(
                    cond::ACCEPTED,
                    cond::CONFLICTED,
                    "an older policy (or one naming the port) decides TLS for a target",
                ));
                conditions.push(Condition::ok(
                    cond::RESOLVED_REFS,
                    cond::RESOLVED_REFS,
                    "all references resolved",
                ));
            }
            Ok(_) => {
                conditions.push(Condition::ok(
                    cond::ACCEPTED,
                    cond::ACCEPTED,
                    "TLS to the targeted Service ports is validated as this policy says",
                ));
                conditions.push(Condition::ok(
                    cond::RESOLVED_REFS,
                    cond::RESOLVED_REFS,
                    "all references resolved",
                ));
            }
            Err(e) => {
                conditions.push(Condition::fail(
                    cond::ACCEPTED,
                    e.accepted,
                    format!("{}; the targeted Service ports are not used", e.message),
                ));
                match e.resolved_refs {
                    Some(reason) => {
                        conditions.push(Condition::fail(cond::RESOLVED_REFS, reason, e.message))
                    }
                    None => conditions.push(Condition::ok(
                        cond::RESOLVED_REFS,
                        cond::RESOLVED_REFS,
                        "all references resolved",
                    )),
                }
            }
        }
        let mut gateways: Vec<ObjKey> = targets.iter().flat_map(&ancestors).collect();
        gateways.sort();
        gateways.dedup();
        let entries = gateways
            .into_iter()
            .map(|gw| PolicyAncestorStatus {
                ancestor_ref: AncestorRef {
                    kind: "Gateway".into(),
                    namespace: gw.namespace.clone(),
                    name: gw.name.clone(),
                    section_name: None,
                },
                conditions: conditions.clone(),
            })
            .collect();
        out.insert(key.clone(), Arc::new(entries));
    }
    out
}

/// Whether another policy targeting the same ports the same way (both naming the port, or
/// both the whole Service) decides over `policy` for some port of `service`. One naming the
/// port and one naming the Service do not conflict: each decides where it is the most specific.
fn loses(store: &Store, policy: &ObjKey, service: &ObjKey) -> bool {
    let Some(svc) = store.services.get(service) else {
        return false;
    };
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports.into_iter().flatten().any(|port| {
        let all = ranked(store, service, port.name.as_deref());
        let Some(mine) = all
            .iter()
            .find(|(_, k, _)| *k == policy)
            .map(|(s, _, _)| *s)
        else {
            return false;
        };
        all.iter()
            .find(|(s, _, _)| *s == mine)
            .is_some_and(|(_, k, _)| *k != policy)
    })
}
