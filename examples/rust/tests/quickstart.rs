//! The quickstart is run as a test, so the documented example never rots.

use std::process::Command;

#[test]
fn quickstart_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env_remove("NATS_URL")
        .output()
        .expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "created station \"employee-changes\"",
        "dead letter: {\"field\":\"salary\",\"value\":\"five thousand\"}",
        "after 3 deliveries: salary is not a number",
        "payroll applied 7 of 7 changes",
        "audit replayed 8 messages",
        "quickstart OK",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn the_payments_ledger_applies_each_payment_once_across_a_crash() {
    let out = Command::new(env!("CARGO_BIN_EXE_payments"))
        .env_remove("NATS_URL")
        .output()
        .expect("run the payments example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "payments failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("300 payments applied once each"),
        "{stdout}"
    );
    assert!(stdout.contains("payments OK"), "{stdout}");
}
