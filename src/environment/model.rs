//! Switches of the model builder (security context, GPU, resource, ambassador defaults).
//!
//! Read from the process environment by [`super::var`] and friends only.
