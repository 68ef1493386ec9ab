//! Which RCU domain a collection retires to and checks its read guards against.

use std::sync::Arc;

use rcu_core::{Domain, ReadGuard};

/// The global domain, or a shared handle to another one.
#[derive(Debug, Clone)]
pub(crate) enum DomainHandle {
    Global,
    Shared(Arc<Domain>),
}

impl DomainHandle {
    #[inline]
    pub(crate) fn get(&self) -> &Domain {
        match self {
            DomainHandle::Global => Domain::global(),
            DomainHandle::Shared(domain) => domain,
        }
    }

    /// Panics unless `guard` is a read section of this domain: only such a section keeps
    /// this collection's retired nodes and tables alive.
    #[inline]
    #[track_caller]
    pub(crate) fn check(&self, guard: &ReadGuard<'_>, what: &str) {
        assert!(
            guard.is_of(self.get()),
            "rcu-collections: {what} read under a read guard of another domain than its own: a \
             read section protects only its own domain's data. Fix: collections made with \
             new()/with_hasher() use rcu_core::read_lock(); those made *_in(domain) use \
             domain.read_lock()"
        );
    }
}
