//! The package's hand-written `.d.ts` checked against the lists the code uses: error codes,
//! event types and their fields, and option names. A new code, event or option that the types
//! do not declare (or a declared one the code no longer has) fails here.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use qauth::error::ErrorCode;
use qauth::event::Event;

const DTS: &str = include_str!("../pkg-template/qauth.d.ts");
const LOADER: &str = include_str!("../pkg-template/load.js");

/// The text of the declaration that starts with `head`, up to its closing line.
fn block(head: &str, end: &str) -> &'static str {
    let start = DTS.find(head).unwrap_or_else(|| panic!("{head} is declared"));
    let rest = &DTS[start + head.len()..];
    &rest[..rest.find(end).unwrap_or_else(|| panic!("{head} ends"))]
}

/// The names of the properties declared directly in an interface or object type body.
fn props(body: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in body.lines().map(str::trim) {
        if line.starts_with("/**") || line.starts_with('*') || line.starts_with("//") {
            continue;
        }
        if let Some((name, _)) = line.split_once(':') {
            let name = name.trim().trim_end_matches('?');
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) {
                out.insert(name.to_string());
            }
        }
    }
    out
}

fn quoted(text: &str) -> BTreeSet<String> {
    text.split('"').skip(1).step_by(2).map(String::from).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn error_codes_are_the_rust_table_plus_the_loaders() {
    let declared = quoted(block("export type AuthErrorCode =", ";"));
    let mut expected: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.as_str().to_string()).collect();
    // The one code thrown before any wasm runs: the entry that could not load it.
    assert!(LOADER.contains("new AuthError(\"wasm_load_failed\""));
    expected.insert("wasm_load_failed".into());
    assert_eq!(declared, expected);
}

#[test]
fn events_and_their_fields() {
    let union = block("export type QauthEvent =", ";\n");
    let mut seen = BTreeSet::new();
    for variant in union.split("| {").skip(1) {
        let body = &variant[..variant.rfind('}').expect("object type")];
        let kind = body.split('"').nth(1).expect("a type literal").to_string();
        let mut fields: BTreeSet<String> = body.split(';').filter_map(|f| f.split_once(':')).map(|(n, _)| n.trim().to_string()).collect();
        assert!(fields.remove("type"), "{kind} has a type");
        assert_eq!(fields, set(Event::names(&kind)), "fields of {kind}");
        seen.insert(kind);
    }
    assert_eq!(seen, Event::SHAPES.iter().map(|(k, _)| k.to_string()).collect());
}

#[test]
fn option_names() {
    let mut qflow = props(block("export interface QflowAuthBaseOptions {", "\n}"));
    // The credential pair is declared in the union beside the base options.
    let pair = block("export type QflowAuthOptions = QflowAuthBaseOptions &", "\n");
    assert!(pair.contains("username: string; password: string") && pair.contains("password?: never"), "a password needs a username");
    qflow.extend(set(&["username", "password"]));
    assert_eq!(qflow, set(qauth::qflow::OPTIONS));

    let mut qpien = set(qauth::qpien::OPTIONS);
    // `store` is read only inside the TokenBroker (its own storage); users give `broker`.
    qpien.remove("store");
    assert_eq!(props(block("export interface QpienAuthOptions {", "\n}")), qpien);

    assert_eq!(props(block("export function beginAuthorization(options: {", "}")), set(qauth::pkce::BEGIN_OPTIONS));
}
