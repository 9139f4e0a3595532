//! Whether a validated start may go ahead at all (its source may reach
//! nothing its profile refuses), and its admission: room for it
//! (`--max-jobs`) is decided with its placement, for the whole cluster at
//! once (`placement`), in one transaction with the starts that arrived
//! beside it.
//!
//! Every admission takes the cluster's lock (PostgreSQL's advisory lock,
//! SQLite's one write), so admissions were taken one at a time anyway;
//! taken together, the starts queued while one transaction runs share the
//! next one: its lock, its reading of the nodes, its count of this node's
//! jobs and its commit. One task admits them, in the order they came.

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use url::Url;

use super::{JobError, JobService, ValidStart};
use crate::profile::{Refusal, check_host};
use crate::store::{Job, Recording};

/// Most starts admitted in one transaction: a large burst is not held
/// until the last of its starts is decided.
const MAX_TOGETHER: usize = 64;

/// A start waiting for its admission, and where its answer goes.
pub(super) struct Queued {
    start: ValidStart,
    answer: oneshot::Sender<Result<(Recording, Job), JobError>>,
}

/// Where starts queue for their admission.
pub(super) type Admissions = mpsc::UnboundedSender<Queued>;

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

    /// Decides where a validated start runs and stores its recording and
    /// job there (`running` here, or `pending` on the node chosen), with
    /// whatever other starts are queued beside it.
    pub(super) async fn admit(&self, start: &ValidStart) -> Result<(Recording, Job), JobError> {
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            start: start.clone(),
            answer,
        };
        self.inner
            .admissions
            .send(queued)
            .map_err(|_| JobError::ShuttingDown)?;
        answered.await.map_err(|_| JobError::ShuttingDown)?
    }

    /// Admits queued starts until `closed`: what is queued when one
    /// transaction ends goes into the next.
    pub(super) async fn admit_queued(
        self,
        mut queue: mpsc::UnboundedReceiver<Queued>,
        closed: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                queued = queue.recv() => queued,
                () = closed.cancelled() => None,
            };
            let Some(first) = first else { return };
            let mut together = vec![first];
            while together.len() < MAX_TOGETHER {
                match queue.try_recv() {
                    Ok(queued) => together.push(queued),
                    Err(_) => break,
                }
            }
            self.admit_together(together).await;
        }
    }

    /// Admits `together` in one transaction and answers each. When the
    /// transaction fails, each start is admitted again on its own: one
    /// start's failure is not the others'.
    async fn admit_together(&self, together: Vec<Queued>) {
        debug!(starts = together.len(), "admitting starts together");
        let starts: Vec<&ValidStart> = together.iter().map(|q| &q.start).collect();
        let answers = match self.admit_all(&starts).await {
            Ok(answers) => answers,
            Err(e) if together.len() == 1 => vec![Err(JobError::Database(e))],
            Err(_) => {
                let mut answers = Vec::with_capacity(together.len());
                for start in &starts {
                    answers.push(match self.admit_all(&[start]).await {
                        Ok(mut answer) => answer.pop().unwrap_or(Err(JobError::ShuttingDown)),
                        Err(e) => Err(JobError::Database(e)),
                    });
                }
                answers
            }
        };
        for (queued, answer) in together.into_iter().zip(answers) {
            // A start whose client went away has nobody to answer.
            let _ = queued.answer.send(answer);
        }
    }
}
