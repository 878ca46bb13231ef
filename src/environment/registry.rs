//! Settings of the app registry: location, branch, fetch timeouts.
//!
//! Read from the process environment by [`super::var`] and friends only.
