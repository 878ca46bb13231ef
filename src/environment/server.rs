//! Settings of the `tycho api` server: limits, timeouts, access token.
//!
//! Read from the process environment by [`super::var`] and friends only.
