//! Shared helpers for the agent's integration tests.
pub mod fake_apiserver;
pub mod kube;
