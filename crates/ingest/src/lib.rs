//! harbinger-ingest
