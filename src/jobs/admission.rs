//! Whether a validated start may go ahead at all: its source may reach
//! nothing its profile refuses. Room for it (`--max-jobs`) is decided with
//! its placement, for the whole cluster at once (`placement`).

use url::Url;

use super::{JobError, JobService, ValidStart};
use crate::profile::{Refusal, check_host};

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
}
