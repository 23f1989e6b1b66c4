//! harbinger-core
