//! Settings of the Kubernetes executor: kubeconfig, context, namespace, timeouts, cache.
//!
//! Read from the process environment by [`super::var`] and friends only.
