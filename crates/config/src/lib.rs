//! harbinger-config
