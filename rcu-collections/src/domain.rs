//! Which RCU domain a collection retires to and checks its read guards against.

use std::sync::Arc;

use rcu_core::{Domain, RcuDomain, RcuGuard};

/// The global domain, or a shared handle to another one, classic or sleepable.
#[derive(Clone)]
pub(crate) enum DomainHandle {
    Global,
    Shared(Arc<dyn RcuDomain + Send + Sync>),
}

impl DomainHandle {
    /// The domain's engine (for a sleepable domain, the `Domain` it runs on: its classic
    /// sections and deferred frees are the ones the collections' calls use inside).
    #[inline]
    pub(crate) fn get(&self) -> &Domain {
        match self {
            DomainHandle::Global => Domain::global(),
            DomainHandle::Shared(domain) => domain.as_domain(),
        }
    }

    /// Panics unless `guard` is a read section of this domain: only such a section keeps
    /// this collection's retired nodes and tables alive.
    #[inline]
    #[track_caller]
    pub(crate) fn check(&self, guard: &impl RcuGuard, what: &str) {
        assert!(
            guard.domain_key() == self.get().domain_key(),
            "rcu-collections: {what} read under a read guard of another domain than its own: a \
             read section protects only its own domain's data. Fix: collections made with \
             new()/with_hasher() use rcu_core::read_lock(); those made *_in(domain) use \
             domain.read_lock() (or, for a sleepable domain, its read_lock or down_read)"
        );
    }
}

impl core::fmt::Debug for DomainHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("DomainHandle").field(&self.get().name()).finish()
    }
}
