//! Budgets of template rendering (`TYCHO_TEMPLATE_*`).
//!
//! Read from the process environment by [`super::var`] and friends only.
