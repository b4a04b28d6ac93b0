//! One YAML document → one typed [`Object`], with errors that name the field.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{FileLoad, LoadError};
use crate::api::REFUSED_ANNOTATION;
use crate::store::{Kind, KindFn, Object, StoredKind};

/// Decodes one document (`index` is 1-based; `first_line` places YAML errors in the file).
pub fn decode_document(path: &Path, index: usize, first_line: usize, text: &str) -> FileLoad {
    let mut out = FileLoad::default();
    let err = |object: Option<String>, message: String| LoadError {
        file: path.to_path_buf(),
        document: index,
        object,
        message,
    };
    let value: Value = match yaml_serde::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // The parser's positions count from the document's first line.
            out.errors.push(err(
                None,
                format!("invalid YAML (document starts at line {first_line}): {e}"),
            ));
            return out;
        }
    };
    decode_value(value, &mut out, &err);
    out
}

fn decode_value(
    value: Value,
    out: &mut FileLoad,
    err: &dyn Fn(Option<String>, String) -> LoadError,
) {
    if value.is_null() {
        return;
    }
    let Some(map) = value.as_object() else {
        out.errors
            .push(err(None, "document is not a mapping".into()));
        return;
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind_name = map.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version.is_empty() || kind_name.is_empty() {
        out.errors
            .push(err(None, "missing apiVersion or kind".into()));
        return;
    }
    if kind_name == "List" || kind_name.ends_with("List") && map.contains_key("items") {
        if let Some(items) = map.get("items").and_then(Value::as_array) {
            for item in items.clone() {
                decode_value(item, out, err);
            }
        }
        return;
    }
    let label = describe(kind_name, map);
    let Some(kind) = Kind::from_type_meta(api_version, kind_name) else {
        out.warnings.push(format!(
            "skipped {api_version} {label}: not a kind Gatehouse reads"
        ));
        return;
    };
    let (mut object, unknown) = match typed(kind, value) {
        Ok(typed) => typed,
        Err(message) if kind == Kind::Secret => {
            // serde quotes the value it could not take, which may be a private key.
            let field = message
                .strip_prefix("field `")
                .and_then(|m| m.split_once('`'))
                .map(|(f, _)| format!("field `{f}`: "))
                .unwrap_or_default();
            let message = format!(
                "{field}does not decode (the value is not shown: it may hold a key); data and stringData map names to strings"
            );
            return out.errors.push(err(Some(label), message));
        }
        Err(message) => return out.errors.push(err(Some(label), message)),
    };
    if let Err(message) = validate_names(&object) {
        return out.errors.push(err(Some(label), message));
    }
    let refused = match unknown.as_slice() {
        [] => validate_cel(&object).err(),
        [one] => Some(format!("unknown field `{one}`")),
        many => Some(format!("unknown fields `{}`", many.join("`, `"))),
    };
    let Some(message) = refused else {
        return out.objects.push(object);
    };
    // A route or policy that is left out would leave its paths to a broader route, or its
    // targets unprotected: it stays, marked, and the model fails it closed.
    if matches!(
        kind,
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TrafficPolicy
    ) {
        object.annotate(REFUSED_ANNOTATION, message.clone());
        out.objects.push(object);
    }
    out.errors.push(err(Some(label), message));
}

fn describe(kind: &str, map: &serde_json::Map<String, Value>) -> String {
    let meta = map.get("metadata");
    let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => kind.to_string(),
    }
}

/// Decodes `value` as `T`, with the fields `T` does not have (which `kubectl apply`, with
/// strict field validation, reports): a setting dropped unread could be a protection.
fn parse<T: DeserializeOwned>(value: Value) -> Result<(T, Vec<String>), String> {
    let mut unknown = Vec::new();
    let parsed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value,
        &mut |path: serde_ignored::Path<'_>| unknown.push(field_path(&path)),
    ))
    .map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("field `{path}`: {}", e.into_inner())
        }
    })?;
    // Custom resource types take their type meta from the kind, not from fields.
    unknown.retain(|p| p != "apiVersion" && p != "kind");
    Ok((parsed, unknown))
}

/// `spec.targetSelectors[0].matchLabelz`, as the API server names a field.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The object, with its unknown fields.
fn typed(kind: Kind, value: Value) -> Result<(Object, Vec<String>), String> {
    struct Typed(Value);
    impl KindFn for Typed {
        type Output = Result<(Object, Vec<String>), String>;
        fn call<K: StoredKind>(self) -> Self::Output {
            parse::<K>(self.0).map(|(o, unknown)| (K::into_object(o), unknown))
        }
    }
    let (mut object, unknown) = kind.with(Typed(value))?;
    object.set_default_namespace();
    Ok((object, unknown))
}

/// What the API server would refuse of a name or namespace. Names matter beyond tidiness:
/// Gatehouse derives keys no object can have from characters a name cannot hold (an inline
/// provider's `ROUTE:ruleN:externalauth`).
fn validate_names(object: &Object) -> Result<(), String> {
    let key = object.key();
    if key.name.is_empty() {
        return Err("metadata.name is required".into());
    }
    if !crate::api::is_dns_subdomain(&key.name) {
        return Err(format!(
            "metadata.name {:?} is not a lower-case RFC 1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters)",
            key.name
        ));
    }
    let label = crate::api::is_dns_subdomain(&key.namespace)
        && key.namespace.len() <= 63
        && !key.namespace.contains('.');
    if !key.namespace.is_empty() && !label {
        return Err(format!(
            "metadata.namespace {:?} is not a lower-case RFC 1123 label (a-z, 0-9, '-'; at most 63 characters)",
            key.namespace
        ));
    }
    Ok(())
}

/// Our CRDs' CEL rules, as the API server would apply them.
fn validate_cel(object: &Object) -> Result<(), String> {
    let cel = match object {
        Object::GatewayExtension(o) => super::cel::gateway_extension(o),
        Object::TrafficPolicy(o) => super::cel::traffic_policy(o),
        Object::GatewayParameters(o) => super::cel::gateway_parameters(o),
        _ => Ok(()),
    };
    cel.map_err(|e| format!("rejected by CRD validation: {e}"))
}
