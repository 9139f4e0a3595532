//! Whether a validated start may go ahead on this node: its source may
//! reach nothing its profile refuses, and the node has room for one more
//! recorder (`--max-jobs`).

use tokio::sync::MutexGuard;
use url::Url;

use super::{JobError, JobService, ValidStart};
use crate::profile::{Refusal, check_host};
use crate::store;

/// Held from the capacity check until the new job is stored: no other
/// start counts the live jobs meanwhile, so two starts cannot both take
/// the last place.
pub(super) struct Place<'a>(#[allow(dead_code)] MutexGuard<'a, ()>);

impl JobService {
    /// Checks the source's host against its profile's rules, resolving it
    /// (which may take a moment, so this runs before anything is held).
    pub(super) async fn check_reach(&self, start: &ValidStart) -> Result<(), JobError> {
        // Parsed already by validation; a failure here refuses nothing new.
        let Ok(url) = Url::parse(&start.source) else {
            return Ok(());
        };
        check_host(&url, start.profile.host_rules(&start.profile_name))
            .await
            .map_err(|Refusal { rule, reason }| JobError::SourceRefused { rule, reason })
    }

    /// Takes one of the node's places for recorders, or says it has none
    /// left. Keep the place until the job is stored.
    pub(super) async fn take_place(&self) -> Result<Place<'_>, JobError> {
        let guard = self.inner.admission.lock().await;
        let limit = self.inner.settings.limits.max_jobs;
        let live =
            store::jobs::count_live_on_node(&self.inner.db, &self.inner.settings.node_id).await?;
        if live >= limit as u64 {
            return Err(JobError::AtCapacity { limit });
        }
        Ok(Place(guard))
    }
}
