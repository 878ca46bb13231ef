//! The Kubernetes executor: starts, lists, modifies and deletes systems on a cluster
//! with kube-rs. (Being written.)
