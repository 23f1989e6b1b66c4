//! harbinger-testkit
