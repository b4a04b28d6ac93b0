//! What the Gateway's status says when provisioned names are taken by objects that are not
//! Gatehouse's ([`crate::provisioned::ownership`]).

use std::fmt;

use crate::model::Condition;
use crate::model::condition_names as cond;
use crate::provisioned::MANAGED_BY;

/// An object with a provisioned name that is not Gatehouse's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    pub kind: &'static str,
    pub name: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// `Programmed=False` for a Gateway whose proxies cannot be provisioned because of
/// `conflicts`. Gateway API's `NoResources` is the reason for a Gateway whose infrastructure
/// cannot be had; `Invalid` would blame the Gateway's spec, which is fine.
pub fn conflict_condition(conflicts: &[Conflict]) -> Condition {
    let list = conflicts
        .iter()
        .map(Conflict::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Condition::fail(
        cond::PROGRAMMED,
        cond::NO_RESOURCES,
        format!(
            "{list} already exist{s} without Gatehouse's label app.kubernetes.io/managed-by={MANAGED_BY} \
             and an ownerReference to this Gateway; Gatehouse will not adopt, change or delete \
             {them} and provisions no proxy objects for this Gateway until {them_} deleted or renamed",
            s = if conflicts.len() == 1 { "s" } else { "" },
            them = if conflicts.len() == 1 { "it" } else { "them" },
            them_ = if conflicts.len() == 1 {
                "it is"
            } else {
                "they are"
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflict_condition_names_every_object_and_uses_a_gateway_api_reason() {
        let c = conflict_condition(&[
            Conflict {
                kind: "ConfigMap",
                name: "gatehouse-http".into(),
            },
            Conflict {
                kind: "Deployment",
                name: "gatehouse-http".into(),
            },
        ]);
        assert_eq!(
            (c.type_.as_str(), c.status, c.reason.as_str()),
            ("Programmed", "False", "NoResources")
        );
        assert!(
            c.message.starts_with(
                "ConfigMap gatehouse-http, Deployment gatehouse-http already exist without"
            ),
            "{}",
            c.message
        );
        assert!(c.message.contains("will not adopt"), "{}", c.message);
    }
}
