//! [`Chain`]: several actuators, each for some resource kinds, called in order for every
//! action. A Redis failover is the `redis` actuator (promote the replica) and then the
//! `haproxy` actuator (switch traffic to it); a creation passes the endpoint the first
//! step provisioned to the next ones on the shadow.

use std::sync::Arc;

use async_trait::async_trait;
use harbinger_core::JournalStatus;
use harbinger_core::Resource;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};

/// One actuator of a chain and the resource kinds it acts on.
#[derive(Debug, Clone)]
pub struct Step {
    /// Resource kinds it handles; empty: every kind.
    pub kinds: Vec<String>,
    /// The actuator (with its layers).
    pub actuator: Arc<dyn Actuator>,
}

impl Step {
    fn handles(&self, resource: Option<&Resource>) -> bool {
        self.kinds.is_empty() || resource.is_some_and(|r| self.kinds.contains(&r.kind))
    }
}

/// Actuators called in order; the first failure stops the chain.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    steps: Vec<Step>,
}

impl Chain {
    /// A chain of `steps`.
    pub fn new(steps: Vec<Step>) -> Self {
        Chain { steps }
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

fn rank(s: ShadowState) -> u8 {
    match s {
        ShadowState::Planned => 0,
        ShadowState::Provisioning => 1,
        ShadowState::Syncing => 2,
        _ => 3,
    }
}

#[async_trait]
impl Actuator for Chain {
    fn name(&self) -> &'static str {
        "chain"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let mut req = req.clone();
        let mut details = Vec::new();
        let mut statuses = Vec::new();
        let mut endpoint = None;
        let mut reached: Option<ShadowState> = None;
        for step in self.steps.iter().filter(|s| s.handles(req.resource.as_ref())) {
            let name = step.actuator.name();
            let out = step.actuator.apply(&req).await;
            details.push(format!("{name}: {}", out.detail));
            if !out.succeeded() && out.status != JournalStatus::Skipped {
                let mut failed = ActuatorOutcome::failed(details.join("; "));
                failed.endpoint = endpoint;
                return failed;
            }
            if let Some(e) = &out.endpoint {
                endpoint.get_or_insert_with(|| e.clone());
                req.shadow.endpoint.get_or_insert_with(|| e.clone());
            }
            if let Some(r) = out.reached {
                reached = Some(reached.map_or(r, |x| if rank(r) < rank(x) { r } else { x }));
            }
            statuses.push(out.status);
        }
        if statuses.is_empty() {
            let kind = req.resource.as_ref().map_or("unknown", |r| r.kind.as_str());
            return ActuatorOutcome::new(JournalStatus::Skipped, format!("no actuator handles resources of kind {kind}"));
        }
        let all = |s: JournalStatus| statuses.iter().all(|x| *x == s);
        let status = if all(JournalStatus::AlreadyApplied) {
            JournalStatus::AlreadyApplied
        } else if all(JournalStatus::DryRun) {
            JournalStatus::DryRun
        } else if all(JournalStatus::Skipped) {
            JournalStatus::Skipped
        } else {
            JournalStatus::Applied
        };
        ActuatorOutcome { status, detail: details.join("; "), reached, endpoint }
    }

    async fn sync_state(&self, shadow: &Shadow, resource: Option<&Resource>) -> Result<ShadowState, String> {
        let mut worst = ShadowState::Ready;
        for step in self.steps.iter().filter(|s| s.handles(resource)) {
            match step.actuator.sync_state(shadow, resource).await? {
                ShadowState::Failed => return Ok(ShadowState::Failed),
                s if rank(s) < rank(worst) => worst = s,
                _ => {}
            }
        }
        Ok(worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_plan::ActionKind;

    #[derive(Debug)]
    struct Fake {
        name: &'static str,
        out: ActuatorOutcome,
        sync: ShadowState,
        seen: std::sync::Mutex<Vec<Option<String>>>,
    }

    #[async_trait]
    impl Actuator for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
            self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(req.shadow.endpoint.clone());
            self.out.clone()
        }
        async fn sync_state(&self, _: &Shadow, _: Option<&Resource>) -> Result<ShadowState, String> {
            Ok(self.sync)
        }
    }

    fn fake(
        name: &'static str,
        status: JournalStatus,
        endpoint: Option<&str>,
        reached: Option<ShadowState>,
        sync: ShadowState,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            out: ActuatorOutcome { status, detail: format!("{name} did it"), reached, endpoint: endpoint.map(str::to_string) },
            sync,
            seen: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn req(kind: &str) -> ActuatorRequest {
        let shadow = Shadow {
            id: "r@b#1".into(),
            resource: "r".into(),
            primary: "a".into(),
            host: "b".into(),
            state: ShadowState::Planned,
            causes: vec![],
            priority: 1.0,
            cpu_cores: 1.0,
            mem_gb: 1.0,
            created_at: 1,
            updated_at: 1,
            last_used_at: 1,
            expires_at: None,
            endpoint: None,
        };
        let resource = Resource {
            id: "r".into(),
            kind: kind.into(),
            host: "a".into(),
            criticality: 3,
            cpu_cores: 1.0,
            mem_gb: 1.0,
            depends_on: vec![],
            state: serde_json::Value::Null,
        };
        ActuatorRequest {
            key: "create:r@b#1".into(),
            attempt: 1,
            action: ActionKind::CreateShadow { shadow: shadow.clone() },
            shadow,
            resource: Some(resource),
        }
    }

    #[tokio::test]
    async fn steps_run_in_order_for_their_kinds_and_pass_the_endpoint_on() {
        let redis = fake("redis", JournalStatus::Applied, Some("10.0.0.2:6380"), Some(ShadowState::Syncing), ShadowState::Syncing);
        let haproxy = fake("haproxy", JournalStatus::Applied, None, None, ShadowState::Ready);
        let web = fake("exec", JournalStatus::Applied, None, None, ShadowState::Ready);
        let chain = Chain::new(vec![
            Step { kinds: vec!["redis".into()], actuator: redis.clone() },
            Step { kinds: vec!["web".into()], actuator: web.clone() },
            Step { kinds: vec![], actuator: haproxy.clone() },
        ]);
        let out = chain.apply(&req("redis")).await;
        assert_eq!(
            (out.status, out.endpoint.as_deref(), out.reached),
            (JournalStatus::Applied, Some("10.0.0.2:6380"), Some(ShadowState::Syncing))
        );
        assert_eq!(out.detail, "redis: redis did it; haproxy: haproxy did it");
        assert_eq!(*haproxy.seen.lock().expect("lock"), [Some("10.0.0.2:6380".to_string())], "the next step sees the endpoint");
        assert!(web.seen.lock().expect("lock").is_empty(), "not its kind");
        let r = req("redis");
        assert_eq!(chain.sync_state(&r.shadow, r.resource.as_ref()).await, Ok(ShadowState::Syncing), "the least advanced step");
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_chain_and_no_step_is_skipped_with_a_reason() {
        let bad = fake("redis", JournalStatus::Failed, None, None, ShadowState::Failed);
        let after = fake("haproxy", JournalStatus::Applied, None, None, ShadowState::Ready);
        let chain = Chain::new(vec![Step { kinds: vec![], actuator: bad }, Step { kinds: vec![], actuator: after.clone() }]);
        let r = req("redis");
        let out = chain.apply(&r).await;
        assert_eq!((out.status, out.detail.as_str()), (JournalStatus::Failed, "redis: redis did it"));
        assert!(after.seen.lock().expect("lock").is_empty());
        assert_eq!(chain.sync_state(&r.shadow, r.resource.as_ref()).await, Ok(ShadowState::Failed));
        let none = Chain::new(vec![Step { kinds: vec!["web".into()], actuator: after }]);
        let out = none.apply(&req("redis")).await;
        assert_eq!((out.status, out.detail.as_str()), (JournalStatus::Skipped, "no actuator handles resources of kind redis"));
    }
}
