//! The tokio integration of QSBR (feature `tokio`): the runtime's thread hooks call the
//! domain's executor hooks (`api::qsbr_thread`), so tasks read with `QsbrDomain::read` at the
//! cost of a load and workers are offline while they park.

use std::sync::Arc;

use tokio::runtime::Builder;

use crate::api::qsbr::QsbrDomain;

impl QsbrDomain {
    /// Attaches this domain to the runtime `builder` will build: its worker threads stay
    /// online between [`read`](QsbrDomain::read)s and go offline when they park. Sets the
    /// builder's `on_thread_start`, `on_thread_park` and `on_thread_stop` hooks, replacing
    /// any set before; to keep your own, call [`QsbrDomain::executor_thread_start`],
    /// [`executor_thread_park`](QsbrDomain::executor_thread_park) and
    /// [`executor_thread_stop`](QsbrDomain::executor_thread_stop) from them instead.
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
}
