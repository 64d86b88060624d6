//! Group commit for the per-tick Redis calls: every claim (and every finish) a process makes goes
//! through one [`Batcher`], whose task sends whatever requests piled up as one script call. At most
//! `in_flight` calls are on the wire at once; while all are, requests pile up for the next one. At
//! low load a batch holds one request and costs what a direct call did; at 20,000 ticks/s a call
//! carries hundreds, so the Redis round trips and script runs per tick fall with load instead of
//! growing with it. More than one call in flight keeps a slow round trip (a busy host delays every
//! task wake-up) from capping the rate at `max_batch` per round trip.
//!
//! No timer is involved: a request never waits for company, only for a free call. Each batch is
//! one atomic script run, so concurrent batches are as safe as concurrent single calls. The task
//! ends when the last handle is dropped.

use std::future::Future;

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::SchedulerError;

/// A request waiting for its batch, and where its answer goes.
struct Pending<Req, Resp> {
    req: Req,
    reply: oneshot::Sender<Result<Resp, String>>,
}

/// Handle for sending requests to one batching task; cheap to clone.
pub(crate) struct Batcher<Req, Resp> {
    name: &'static str,
    tx: mpsc::UnboundedSender<Pending<Req, Resp>>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            tx: self.tx.clone(),
        }
    }
}

/// Hand each request of a batch its answer, or the batch's failure.
fn answer<Resp>(
    result: Result<Vec<Resp>, SchedulerError>,
    replies: Vec<oneshot::Sender<Result<Resp, String>>>,
) {
    let failure = match result {
        Ok(answers) if answers.len() == replies.len() => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
            return;
        }
        Ok(answers) => format!("{} answers for {} requests", answers.len(), replies.len()),
        Err(e) => e.to_string(),
    };
    for reply in replies {
        let _ = reply.send(Err(failure.clone()));
    }
}

impl<Req, Resp> Batcher<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Spawn the task. `call` gets up to `max_batch` requests in arrival order and must answer
    /// each, in the same order, or fail them all; up to `in_flight` calls run at once.
    pub(crate) fn spawn<F, Fut>(
        name: &'static str,
        max_batch: usize,
        in_flight: usize,
        call: F,
    ) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, SchedulerError>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<Req, Resp>>();
        let max_batch = max_batch.max(1);
        let calls = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(max_batch);
            loop {
                let Ok(permit) = calls.clone().acquire_owned().await else {
                    return;
                };
                if rx.recv_many(&mut pending, max_batch).await == 0 {
                    return;
                }
                let (reqs, replies): (Vec<Req>, Vec<_>) =
                    pending.drain(..).map(|p| (p.req, p.reply)).unzip();
                let batch = call(reqs);
                tokio::spawn(async move {
                    answer(batch.await, replies);
                    drop(permit);
                });
            }
        });
        Self { name, tx }
    }

    /// Send one request with the next batch and wait for its answer.
    pub(crate) async fn call(&self, req: Req) -> Result<Resp, SchedulerError> {
        let (reply, answer) = oneshot::channel();
        let gone = || SchedulerError::Protocol {
            script: self.name,
            detail: "the batching task is gone".to_owned(),
        };
        self.tx.send(Pending { req, reply }).map_err(|_| gone())?;
        match answer.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(detail)) => Err(SchedulerError::Batch {
                script: self.name,
                detail,
            }),
            Err(_) => Err(gone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn requests_that_pile_up_share_one_call_and_get_their_own_answer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let batcher = Batcher::spawn("double", 100, 1, move |reqs: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(reqs.into_iter().map(|r| r * 2).collect())
            }
        });
        let answers = futures::future::join_all((0..50u32).map(|i| {
            let b = batcher.clone();
            async move { b.call(i).await.unwrap() }
        }))
        .await;
        assert_eq!(answers, (0..50u32).map(|i| i * 2).collect::<Vec<_>>());
        // The first request goes alone; the other 49 pile up behind it.
        assert!(calls.load(Ordering::SeqCst) <= 3, "{calls:?} calls");
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_request_of_its_batch_and_the_next_batch_runs() {
        let batcher = Batcher::spawn("flaky", 10, 2, |reqs: Vec<u32>| async move {
            if reqs.contains(&0) {
                Err(SchedulerError::Config("boom".into()))
            } else {
                Ok(reqs)
            }
        });
        let e = batcher.call(0).await.unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        assert_eq!(batcher.call(7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_wrong_number_of_answers_is_an_error_not_a_mixup() {
        let batcher = Batcher::spawn("short", 10, 2, |_reqs: Vec<u32>| async move {
            Ok(Vec::<u32>::new())
        });
        let e = batcher.call(1).await.unwrap_err();
        assert!(e.to_string().contains("0 answers for 1"), "{e}");
    }
}
