//! `crds/` holds exactly what `gatehouse crds` generates, and the CRDs carry the CEL rules the
//! API server must enforce.

use crate::support;

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let dir = support::repo().join("crds");
    let generated = gatehouse::crds::crds().expect("generate");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<_> = generated.iter().map(|(n, _)| n.clone()).collect();
    want.sort();
    assert_eq!(
        names, want,
        "crds/ holds other files than `gatehouse crds --dir crds` writes"
    );
    for (name, yaml) in generated {
        let on_disk = std::fs::read_to_string(dir.join(&name)).expect("read crd");
        assert!(
            on_disk == yaml,
            "crds/{name} drifted from the API types: run `make crds`"
        );
    }
}

#[test]
fn crds_are_valid_yaml_with_the_cel_rules() {
    let rules: Vec<String> = gatehouse::crds::crds()
        .expect("generate")
        .into_iter()
        .flat_map(|(_, yaml)| {
            let doc: serde_json::Value = yaml_serde::from_str(&yaml).expect("valid YAML");
            assert_eq!(doc["kind"], "CustomResourceDefinition");
            let mut found = Vec::new();
            collect_rules(&doc, &mut found);
            found
        })
        .collect();
    for want in [
        "has(self.extensionRef) != has(self.disable)",
        "(has(self.grpcService) ? 1 : 0) + (has(self.httpService) ? 1 : 0) == 1",
        "self >= 100 && self <= 511",
        "matches(self, '^([0-9]{1,5}(h|m|s|ms)){1,4}$')",
    ] {
        assert!(
            rules.iter().any(|r| r == want),
            "missing CEL rule {want}; have {rules:?}"
        );
    }
}

fn collect_rules(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(list) = map
                .get("x-kubernetes-validations")
                .and_then(|l| l.as_array())
            {
                out.extend(
                    list.iter()
                        .filter_map(|r| r["rule"].as_str().map(str::to_string)),
                );
            }
            map.values().for_each(|x| collect_rules(x, out));
        }
        serde_json::Value::Array(list) => list.iter().for_each(|x| collect_rules(x, out)),
        _ => {}
    }
}
