//! imds
