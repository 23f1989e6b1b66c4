//! The systemd unit shipped in `deploy/systemd/`: `systemd-analyze verify` accepts it with
//! no warning (unknown keys would be ignored silently by systemd), and its offline
//! security exposure stays "OK" (≤ 2.0). The unit's `ExecStart` is pointed at the binary
//! under test, since verify checks that it exists.

use std::path::Path;
use std::process::Command;

const ANALYZE: &str = "/usr/bin/systemd-analyze";

fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/harbinger.service");
    let text = std::fs::read_to_string(&shipped).expect("read the shipped unit");
    assert!(text.contains("ExecStart=/usr/local/bin/harbinger "), "the unit runs /usr/local/bin/harbinger");
    let unit = dir.join("harbinger.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/harbinger", env!("CARGO_BIN_EXE_harbinger"))).expect("write");
    unit
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_is_hardened() {
    assert!(Path::new(ANALYZE).exists(), "{ANALYZE} not found: install the Debian package `systemd` (apt-get install systemd)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_test(tmp.path());
    let out = Command::new(ANALYZE).arg("verify").arg(&unit).output().expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "verify: {}\n{stderr}", out.status);

    let out = Command::new(ANALYZE).args(["security", "--offline=yes"]).arg(&unit).output().expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the level in {line:?}"));
    assert!(level <= 2.0, "exposure {level} > 2.0: {line}");
}
