//! A connection task that runs after the tasks feeding it.
//!
//! A call queued on the connection wakes the connection's task, and tokio
//! runs a task woken that way next, before the other runnable tasks: the
//! connection then writes each call as it comes, one `writev` per call.
//! When several clients' requests arrive together, their tasks are
//! runnable together; if the connection's task first goes to the back of
//! the queue, all their calls leave in one write. Writing less often also
//! spares the backend reads: etcd behind the gateway spent more CPU per
//! call than behind a direct client, which sends calls made together in
//! one write (BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls `F` one turn late after each wake-up: the first poll puts the task
/// at the back of the worker's queue, the next one polls `F`.
#[derive(Debug)]
pub(super) struct Coalesce<F> {
    inner: F,
    /// The task went to the back of the queue and may now poll `inner`.
    waited: bool,
}

impl<F> Coalesce<F> {
    pub(super) fn new(inner: F) -> Coalesce<F> {
        Coalesce {
            inner,
            waited: false,
        }
    }
}

impl<F: Future + Unpin> Future for Coalesce<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.waited {
            self.waited = true;
            // A task that wakes itself while it runs is queued behind the
            // tasks already runnable, not ahead of them.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "current_thread")]
    async fn the_inner_future_runs_after_the_tasks_already_queued() {
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let connection = {
            let order = Arc::clone(&order);
            tokio::spawn(async move {
                Coalesce::new(std::future::ready(())).await;
                order.lock().push("connection");
            })
        };
        let caller = {
            let order = Arc::clone(&order);
            tokio::spawn(async move { order.lock().push("caller") })
        };
        connection.await.unwrap();
        caller.await.unwrap();
        // Without the late turn the connection, queued first, runs first.
        assert_eq!(*order.lock(), ["caller", "connection"]);
    }
}
