//! Tests only: see tests/bundle.rs.
