//! podidentity
