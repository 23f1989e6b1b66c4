//! harbinger-api
