//! The binary's `--check-config`.

use std::process::Command;

#[test]
fn check_config_warns_about_an_interface_this_host_lacks_and_still_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |interface: &str| {
        Command::new(env!("CARGO_BIN_EXE_p1-dashboard"))
            .args(["--check-config", "--interface", interface])
            .current_dir(dir.path())
            .output()
            .expect("run")
    };
    let out = run("p1hub-nas0");
    assert!(out.status.success(), "a warning, not an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: multicast.interface 'p1hub-nas0'") && err.contains("no interface named"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
    let out = run("127.0.0.1");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no warning for an address this host has");
}
