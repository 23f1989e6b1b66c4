//! harbinger-dataset
