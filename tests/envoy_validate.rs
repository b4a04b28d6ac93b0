//! Every translate case, as `gatehouse translate -o bootstrap` prints it, is accepted by the
//! real Envoy binary in `--mode validate`.

mod support;

use std::process::Command;

#[test]
fn envoy_accepts_every_case() {
    let envoy = support::envoy();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for case in support::cases() {
        let mut translate = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        translate.arg("translate").args(["-o", "bootstrap"]);
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
        let file = dir.path().join(format!("{}.yaml", case.name));
        std::fs::write(&file, &out.stdout).expect("write bootstrap");
        let v = Command::new(&envoy)
            .args(["--mode", "validate", "-l", "error", "-c"])
            .arg(&file)
            .output()
            .expect("run envoy");
        assert!(
            v.status.success(),
            "{}: Envoy rejected the config:\n{}{}",
            case.name,
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} cases validated");
}
