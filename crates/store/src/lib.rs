//! harbinger-store
