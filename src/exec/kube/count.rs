//! The registry's per-app `count` as a limit on a user's running instances of an app
//! (`tycho.policy.enforce_count`, off by default as in the original).
//!
//! A start whose request carries `count` (TychoContext.start and `tycho up --registry`
//! copy the app's) is checked twice, with the same rule: the user's other Deployments of
//! the app (labelled `executor=tycho` and the user's `username` label, the pod template's
//! `tycho-app-id` the app) must be fewer than `count`.
//!
//! 1. Before anything is created: refused at once when the limit is reached (the usual
//!    case creates nothing).
//! 2. After the Deployment is created, from a fresh list of the API server: two starts
//!    racing past step 1 each see the other's Deployment, so they cannot both pass; the
//!    one that sees too many others is rolled back like any failed start. In an exact tie
//!    both may be refused (never both admitted): a retry then passes.

use super::error::{Cause, KubeError};
use super::{retry, Kind};
use kube::api::ListParams;
use serde_json::Value;

/// The label selector and the app of a compiled Deployment, when the policy applies.
pub(super) struct Limit {
    selector: String,
    app: String,
    name: String,
    user: String,
    count: u64,
}

impl Limit {
    /// The limit for `deployment` of a system with `count`, when enforcement is on.
    pub(super) fn of(enforce: bool, count: Option<u64>, deployment: &Value) -> Option<Limit> {
        let count = count.filter(|_| enforce)?;
        let labels = deployment.get("metadata")?.get("labels")?;
        let username = labels.get("username")?.as_str()?.to_string();
        let template_labels = deployment
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(Value::Null);
        let app = template_labels
            .get("tycho-app-id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = deployment
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Some(Limit {
            selector: format!("executor=tycho,username={username}"),
            app,
            name,
            user: username,
            count,
        })
    }

    /// Refuses when the user already runs `count` other instances of the app.
    pub(super) async fn check(
        &self,
        client: &kube::Client,
        namespace: &str,
    ) -> Result<(), KubeError> {
        let api = Kind::Deployment.api(client, namespace);
        let list = ListParams::default().labels(&self.selector);
        let what = format!("deployments labelled {}", self.selector);
        let found = retry::idempotent(&what, || api.list(&list))
            .await
            .map_err(|e| e.context(format!("cannot list {what}")))?;
        let others: Vec<&str> = found
            .items
            .iter()
            .filter(|d| {
                let app = d
                    .data
                    .pointer("/spec/template/metadata/labels/tycho-app-id")
                    .and_then(Value::as_str);
                app == Some(self.app.as_str())
                    && d.metadata.name.as_deref() != Some(self.name.as_str())
                    && d.metadata.deletion_timestamp.is_none()
            })
            .filter_map(|d| d.metadata.name.as_deref())
            .collect();
        if (others.len() as u64) < self.count {
            return Ok(());
        }
        Err(KubeError::new(
            Cause::Policy,
            format!(
                "user {} already runs {} instance(s) of app {} ({}): the registry's count is {} (tycho.policy.enforce_count)",
                crate::limits::echo(&self.user),
                others.len(),
                crate::limits::echo(&self.app),
                crate::limits::echo(&others.join(", ")),
                self.count
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_limit_applies_only_when_enforced_and_given() {
        let d = json!({"metadata": {"name": "a-g", "labels": {"username": "jdoe"}},
                       "spec": {"template": {"metadata": {"labels": {"tycho-app-id": "a"}}}}});
        assert!(Limit::of(false, Some(1), &d).is_none());
        assert!(Limit::of(true, None, &d).is_none());
        let limit = Limit::of(true, Some(2), &d).expect("a limit");
        assert_eq!(limit.selector, "executor=tycho,username=jdoe");
        assert_eq!(
            (limit.app.as_str(), limit.name.as_str(), limit.count),
            ("a", "a-g", 2)
        );
    }
}
