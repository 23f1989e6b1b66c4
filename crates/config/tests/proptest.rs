//! Properties of config loading: values written as TOML load back as the same typed
//! values (from text and from a file alike), and no text, environment variable or flag
//! value makes loading panic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use harbinger_config::{Config, ConfigError, ENV_KEYS, LogFormat};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Typed settings, written as a config file would hold them.
#[derive(Debug, Clone)]
struct Settings {
    data_dir: String,
    addr: SocketAddr,
    max_body_bytes: u32,
    retention: Option<Duration>,
    max_host_bytes: u16,
    hot_window: Duration,
    json_logs: bool,
    thresholds: Option<(f64, f64)>,
    grpc_addr: SocketAddr,
}

fn settings() -> impl Strategy<Value = Settings> {
    let path =
        prop::collection::vec(prop_oneof![prop::char::range('a', 'z'), Just('/'), Just(' '), Just('é'), Just('"'), Just('\\')], 1..16)
            .prop_map(String::from_iter);
    let addr = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)));
    let v6 = (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)));
    // Whole seconds up to ~30 years, or a few ms: `humantime` writes both exactly.
    let span = prop_oneof![(1u64..1_000_000_000).prop_map(Duration::from_secs), (1u64..100_000).prop_map(Duration::from_millis)];
    let threshold = (0.001..0.999f64, 0.0..1.0f64).prop_map(|(a, c)| (a, (a * c).max(1e-9)));
    (
        path,
        addr,
        1u32..,
        prop::option::of(span.clone()),
        1u16..,
        span,
        any::<bool>(),
        prop::option::of(threshold),
        prop_oneof![addr_v4(), v6],
    )
        .prop_map(|(data_dir, addr, max_body_bytes, retention, max_host_bytes, hot_window, json_logs, thresholds, grpc_addr)| {
            Settings { data_dir, addr, max_body_bytes, retention, max_host_bytes, hot_window, json_logs, thresholds, grpc_addr }
        })
}

fn addr_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn to_toml(s: &Settings) -> String {
    let mut root = toml::Table::new();
    let mut section = |name: &str, pairs: Vec<(&str, toml::Value)>| {
        let t = root.entry(name.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        for (k, v) in pairs {
            t.as_table_mut().expect("a section").insert(k.to_string(), v);
        }
    };
    let text = |v: String| toml::Value::String(v);
    let span = |d: Duration| text(humantime::format_duration(d).to_string());
    section("http", vec![("addr", text(s.addr.to_string())), ("max_body_bytes", toml::Value::Integer(s.max_body_bytes.into()))]);
    section(
        "store",
        vec![
            ("retention", s.retention.map_or_else(|| text("forever".into()), span)),
            ("max_host_bytes", toml::Value::Integer(s.max_host_bytes.into())),
            ("hot_window", span(s.hot_window)),
        ],
    );
    section("log", vec![("format", text(if s.json_logs { "json" } else { "text" }.into()))]);
    if let Some((a, c)) = s.thresholds {
        section("model", vec![("alert_threshold", toml::Value::Float(a)), ("clear_threshold", toml::Value::Float(c))]);
    }
    section("grpc", vec![("addr", text(s.grpc_addr.to_string()))]);
    root.insert("data_dir".into(), text(s.data_dir.clone()));
    toml::to_string(&root).expect("TOML")
}

/// Values a field may be given: numbers of every size, durations (some overflowing),
/// addresses, booleans and other text.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        Just("1e400".to_string()),
        Just("-0.0".to_string()),
        (any::<u64>(), prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "days", "w", "y"])).prop_map(|(n, u)| format!("{n}{u}")),
        Just("18446744073709551615y".to_string()),
        Just("forever".to_string()),
        Just("never".to_string()),
        Just("off".to_string()),
        Just("true".to_string()),
        Just("json".to_string()),
        Just("chain".to_string()),
        Just("[::1]:0".to_string()),
        Just(String::new()),
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn settings_written_as_toml_load_back(s in settings()) {
        let text = to_toml(&s);
        let c = Config::from_toml("h.toml", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&c.data_dir, &PathBuf::from(&s.data_dir));
        prop_assert_eq!(c.http.addr, s.addr);
        prop_assert_eq!(c.http.max_body_bytes, s.max_body_bytes as usize);
        prop_assert_eq!(c.store.retention, s.retention);
        prop_assert_eq!(c.store.max_host_bytes, usize::from(s.max_host_bytes));
        prop_assert_eq!(c.store.hot_window, s.hot_window);
        prop_assert_eq!(c.log.format, if s.json_logs { LogFormat::Json } else { LogFormat::Text });
        prop_assert_eq!((c.model.alert_threshold, c.model.clear_threshold), s.thresholds.map_or((None, None), |(a, c)| (Some(a), Some(c))));
        prop_assert_eq!(c.grpc.addr, s.grpc_addr);

        // The same text from a file loads the same configuration.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.toml");
        std::fs::write(&path, &text).expect("write");
        prop_assert_eq!(Config::load(Some(&path), |_| None, &[]).expect("loads from a file"), c);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = Config::from_toml("fuzz.toml", &text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn any_value_for_any_key_never_panics(values in prop::collection::btree_map(prop::sample::select(ENV_KEYS.to_vec()), scalar(), 0..8), as_text in any::<bool>()) {
        // As environment variables (read through the same conversion as flags), and as
        // TOML text with the values quoted.
        let env: BTreeMap<&str, String> = values.iter().map(|((var, _), v)| (*var, v.clone())).collect();
        match Config::load(None, |k| env.get(k).cloned(), &[]) {
            Ok(_) | Err(ConfigError::Invalid { .. } | ConfigError::Parse { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        if as_text {
            let mut root = toml::Table::new();
            for ((_, key), v) in &values {
                let (section, name) = key.split_once('.').unwrap_or(("", key));
                let value = toml::Value::String(v.clone());
                if section.is_empty() {
                    root.insert(name.to_string(), value);
                } else {
                    root.entry(section.to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                        .as_table_mut()
                        .expect("a section")
                        .insert(name.to_string(), value);
                }
            }
            let _ = Config::from_toml("fuzz.toml", &toml::to_string(&root).expect("TOML"));
        }
    }
}
