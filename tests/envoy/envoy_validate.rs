//! Every translate case, as `gatehouse translate -o bootstrap` prints it, is accepted by the
//! real Envoy binary in `--mode validate`, with its routes in one table per port and with
//! every port that can be scoped served as route scopes.

use crate::support;

use std::process::Command;

#[test]
fn envoy_accepts_every_case() {
    let envoy = support::envoy();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    let cases = support::cases();
    for (case, scopes_from) in cases.iter().flat_map(|c| [(c, "0"), (c, "1")]) {
        let mut translate = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        translate
            .arg("translate")
            .args(["-o", "bootstrap", "--route-scopes-from", scopes_from]);
        for input in &case.inputs {
            translate.arg("-f").arg(input);
        }
        let out = translate.output().expect("run gatehouse");
        assert!(
            out.status.success(),
            "{}: translate failed: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.path().join(format!("{}-{scopes_from}.yaml", case.name));
        std::fs::write(&file, &out.stdout).expect("write bootstrap");
        let v = Command::new(&envoy)
            .args(["--mode", "validate", "-l", "error", "-c"])
            .arg(&file)
            .output()
            .expect("run envoy");
        assert!(
            v.status.success(),
            "{} (--route-scopes-from {scopes_from}): Envoy rejected the config:\n{}{}",
            case.name,
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 24, "only {checked} cases validated");
}
