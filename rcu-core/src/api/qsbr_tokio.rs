//! The tokio integration of QSBR (feature `tokio`): the runtime's thread hooks call the
//! domain's executor hooks (`api::qsbr_thread`), so tasks read with `QsbrDomain::read` at the
//! cost of a load and workers are offline while they park.

use std::sync::Arc;

use tokio::runtime::Builder;

use crate::api::qsbr::QsbrDomain;
use crate::api::reader::current_slot;
use crate::read::registry::Slot;

impl QsbrDomain {
    /// Attaches this domain to the runtime `builder` will build: a worker goes online at its
    /// first [`read`](QsbrDomain::read) after a park, so that its reads enter without a fence
    /// (the domain's grace periods issuing membarrier meanwhile), and offline when it parks.
    /// Sets the builder's `on_thread_start`, `on_thread_park` and `on_thread_stop` hooks,
    /// replacing any set before; to keep your own, call
    /// [`QsbrDomain::executor_thread_start`],
    /// [`executor_thread_park`](QsbrDomain::executor_thread_park) and
    /// [`executor_thread_stop`](QsbrDomain::executor_thread_stop) from them instead.
    ///
    /// A worker that gives its core away in `tokio::task::block_in_place` idles in the
    /// blocking pool afterwards, where no park hook runs: use
    /// [`QsbrDomain::block_in_place`], or the domain's grace periods keep issuing membarrier
    /// for it until the pool drops the thread.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, QsbrDomain};
    ///
    /// let domain = Arc::new(QsbrDomain::new(DomainConfig::new().name("config")));
    /// let config = Arc::new(RcuCell::new_in(&*domain, String::from("v1")));
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// let runtime = domain.attach_to_tokio(builder.worker_threads(2)).build().unwrap();
    /// let (d, c) = (domain.clone(), config.clone());
    /// let len = runtime.block_on(async move {
    ///     tokio::spawn(async move { d.read(|r| c.load(r).len()) }).await.unwrap()
    /// });
    /// assert_eq!(len, 2);
    /// ```
    pub fn attach_to_tokio<'b>(self: &Arc<Self>, builder: &'b mut Builder) -> &'b mut Builder {
        let (start, park, stop) = (self.clone(), self.clone(), self.clone());
        builder
            .on_thread_start(move || start.executor_thread_start())
            .on_thread_park(move || park.executor_thread_park())
            .on_thread_stop(move || stop.executor_thread_stop())
    }

    /// `tokio::task::block_in_place(f)` for a worker of a runtime this domain is attached to:
    /// the thread goes offline and stops being the executor's first, since it may idle in
    /// the blocking pool afterwards, where no park hook runs. It reads with fenced sections
    /// until the runtime parks it as a worker again.
    ///
    /// # Panics
    /// As `tokio::task::block_in_place`: on a current-thread runtime.
    pub fn block_in_place<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Makes the thread the executor's again, also when `f` unwinds.
        struct Rejoin<'a>(Option<&'a Slot>);
        impl Drop for Rejoin<'_> {
            fn drop(&mut self) {
                if let Some(slot) = self.0 {
                    slot.executor.mark_executor();
                }
            }
        }
        let slot = current_slot(self.domain().state());
        let _rejoin = Rejoin(slot.filter(|slot| {
            slot.end_executor_online();
            slot.executor.leave_executor()
        }));
        tokio::task::block_in_place(f)
    }
}
