//! harbinger-ingest: decoding what sources push into harbinger, into `core` values.
//!
//! # Layout
//! - [`remote_write`]: Prometheus remote-write 1.0 (snappy block + protobuf
//!   `WriteRequest`) into a [`harbinger_core::SampleBatch`], with per-reason counts of
//!   what could not be used.
//!
//! Events (`events.jsonl` lines) are parsed by `harbinger_core::event::parse_events_jsonl`.
//! Datasets on disk are read by `harbinger-dataset`.

pub mod remote_write;
