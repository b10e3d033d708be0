//! contract/jetstation.json agrees with the core: its error kinds and
//! vocabularies are the core's words, and its option records hold the core's
//! settings (the core names a few more, kept out of the contract on purpose).

use jetstation::{
    Compatibility, ConnectOptions, ConsumerOptions, ErrorKind, ProducerOptions, SchemaFormat,
    StartPosition, StationConfig, Storage, WhenFull,
};
use serde_json::Value;

fn contract() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contract/jetstation.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn words(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

/// Field names of a struct, from its `Debug` output.
fn fields(debug: &str) -> Vec<String> {
    let body = &debug[debug.find('{').unwrap() + 1..];
    let mut out = Vec::new();
    let mut depth = 0;
    let mut token = String::new();
    for c in body.chars() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ':' if depth == 0 && !token.trim().is_empty() && !token.contains('"') => {
                out.push(token.trim().trim_start_matches(',').trim().to_string());
                token.clear();
                continue;
            }
            ',' if depth == 0 => token.clear(),
            _ => {}
        }
        if depth == 0 && c != ',' {
            token.push(c);
        } else if depth != 0 {
            token.clear();
        }
    }
    out
}

#[test]
fn error_kinds_and_vocabularies_are_the_cores() {
    let c = contract();
    let kinds: Vec<String> = ErrorKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(words(&c["error_kinds"]), kinds);
    let v = &c["vocabularies"];
    assert_eq!(words(&v["storage"]), Storage::NAMES);
    assert_eq!(words(&v["when_full"]), WhenFull::NAMES);
    assert_eq!(words(&v["start"]), StartPosition::NAMES);
    assert_eq!(words(&v["compatibility"]), Compatibility::NAMES);
    assert_eq!(words(&v["schema_format"]), SchemaFormat::NAMES);
    for word in words(&v["storage"]) {
        assert_eq!(word.parse::<Storage>().unwrap().as_str(), word);
    }
}

#[test]
fn option_records_hold_the_cores_settings() {
    let c = contract();
    let check = |record: &str, debug: String, core_only: &[&str], contract_only: &[&str]| {
        let mut core: Vec<String> = fields(&debug)
            .into_iter()
            .filter(|f| !core_only.contains(&f.as_str()))
            .collect();
        core.extend(contract_only.iter().map(|s| s.to_string()));
        core.sort();
        let mut declared: Vec<String> = c["records"][record]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        declared.sort();
        assert_eq!(declared, core, "{record}");
    };
    // Retry timings are internal; the schema binding is one field in the
    // core and two (schema, schema_version) in the contract.
    check(
        "StationConfig",
        format!("{:?}", StationConfig::default()),
        &["schema"],
        &["schema", "schema_version"],
    );
    check(
        "ProducerOptions",
        format!("{:?}", ProducerOptions::default()),
        &["retry_initial", "retry_max"],
        &[],
    );
    // One `start` in the core; three ways to give it in the contract.
    check(
        "ConsumerOptions",
        format!("{:?}", ConsumerOptions::default()),
        &[],
        &["start_sequence", "start_time"],
    );
    // Servers, credentials and TLS are one field each in the core.
    check(
        "ConnectOptions",
        format!("{:?}", ConnectOptions::new("nats://127.0.0.1:4222")),
        &["urls", "auth", "tls"],
        &[
            "token",
            "user",
            "password",
            "nkey_seed",
            "creds_file",
            "tls_required",
            "tls_ca",
            "tls_cert",
            "tls_key",
        ],
    );
}

#[test]
fn telemetry_names_are_the_cores() {
    let c = contract();
    let names = |key: &str| -> Vec<String> {
        c["telemetry"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("metrics"), jetstation::telemetry::METRICS);
    assert_eq!(names("attributes"), jetstation::telemetry::ATTRIBUTES);
    assert_eq!(jetstation::telemetry::SYSTEM, "nats");
}
