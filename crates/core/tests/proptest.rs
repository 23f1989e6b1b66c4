//! Properties of the `events.jsonl` parser: events written as JSON lines parse back
//! equal, and no input (arbitrary bytes, truncated or spliced lines) makes it panic.

use harbinger_core::HostId;
use harbinger_core::event::{Change, Event, EventKind, parse_events_jsonl};
use proptest::prelude::*;
use serde_json::Value;

/// Short strings with the characters JSON has to escape, and some that it does not.
fn text() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        prop::char::range('a', 'z'),
        Just('"'),
        Just('\\'),
        Just('\n'),
        Just('\t'),
        Just('\u{0}'),
        Just(' '),
        Just('é'),
        Just('\u{1F525}'),
    ];
    prop::collection::vec(chars, 0..12).prop_map(String::from_iter)
}

/// JSON values as they appear in `from`, `to` and extra fields (floats included: they
/// must come back bit for bit).
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    let change = (text(), prop::option::of(json()), prop::option::of(json())).prop_map(|(path, from, to)| Change { path, from, to });
    (
        any::<i64>(),
        prop::sample::select(EventKind::ALL.to_vec()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text().prop_map(HostId::new)),
        prop::option::of(json()),
        prop::option::of(json()),
        prop::collection::vec(change, 0..3),
        // Extra keys never collide with the contract's fields.
        prop::collection::btree_map(text().prop_map(|k| format!("x_{k}")), json(), 0..3),
    )
        .prop_map(|(ts, kind, deployment, resource, host, from, to, changes, extra)| Event {
            ts,
            kind,
            deployment,
            resource,
            host,
            // `"from": null` reads back as absent: both mean "no value".
            from: from.filter(|v| !v.is_null()),
            to: to.filter(|v| !v.is_null()),
            changes: changes
                .into_iter()
                .map(|c| Change { from: c.from.filter(|v| !v.is_null()), to: c.to.filter(|v| !v.is_null()), ..c })
                .collect(),
            extra: extra.into_iter().collect(),
        })
}

fn to_lines(events: &[Event]) -> String {
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).expect("an event serialises"));
        text.push('\n');
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn events_written_as_json_lines_parse_back_equal(events in prop::collection::vec(event(), 0..8), blank in 0usize..3) {
        // Blank lines (and CRLF endings) between events are skipped.
        let mut text = to_lines(&events);
        text.push_str(&"\r\n".repeat(blank));
        let back = parse_events_jsonl(&text, "events.jsonl").expect("written events parse");
        prop_assert_eq!(back, events);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse_events_jsonl(&text, "fuzz") {
            prop_assert!(e.line >= 1 && e.to_string().starts_with("fuzz line "), "{e}");
        }
    }

    #[test]
    fn cut_or_spliced_lines_are_refused_with_their_line(events in prop::collection::vec(event(), 1..4), cut in any::<prop::sample::Index>(), junk in text()) {
        let text = to_lines(&events);
        // Cut anywhere (on a char boundary) and splice junk in: never a panic, and a
        // refusal names a line that exists.
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let spliced = format!("{}{junk}{}", &text[..at], &text[at..]);
        for input in [&text[..at], spliced.as_str()] {
            match parse_events_jsonl(input, "f") {
                Ok(evs) => prop_assert!(evs.len() <= events.len() + 1),
                Err(e) => prop_assert!(e.line >= 1 && e.line <= input.lines().count(), "{e}"),
            }
        }
    }
}

/// Regression (found by `events_written_as_json_lines_parse_back_equal`): a float in an
/// extra field came back one ulp off, until serde_json's `float_roundtrip` was enabled.
#[test]
fn extra_floats_are_written_back_unchanged() {
    let line = r#"{"ts":0,"kind":"deploy_started","x_":[-5.0954018121917814e-59]}"#;
    let events = parse_events_jsonl(line, "events.jsonl").expect("valid");
    assert_eq!(serde_json::to_string(&events[0]).expect("serialises"), line);
}
