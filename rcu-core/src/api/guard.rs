//! What RCU-protected data is read under and made in, whatever the reader flavour: the
//! guards of every flavour are `RcuGuard`s, and `Domain` and `SrcuStruct` are `RcuDomain`s.
//! `RcuCell` and the collections take these, so that one cell type serves classic and
//! sleepable domains; each checks at run time that a guard is of its own domain.

use rcu_ctx::{Context, SectionBrand};

use crate::api::domain::Domain;
use crate::api::qsbr::{QsbrDomain, QsbrOnline};
use crate::api::qsbr_thread::QsbrRead;
use crate::api::reader::ReadGuard;
use crate::api::srcu::SrcuStruct;
use crate::api::srcu_flavor::SrcuFlavor;
use crate::api::srcu_guard::{SrcuGuard, SrcuOwnedGuard};
use crate::state::DomainState;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Identifies the domain a guard is a section of (not for use outside the RCU crates).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainKey(*const DomainState);

impl DomainKey {
    pub(crate) fn of(state: &DomainState) -> Self {
        DomainKey(state)
    }
}

/// A read section of any flavour: [`ReadGuard`], [`SrcuGuard`] or [`SrcuOwnedGuard`].
/// Data loaded through one (`RcuCell::load`, the collections' reads) borrows it, so it lives
/// no longer than the section. Sealed.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, RcuGuard, SrcuStruct};
///
/// fn first<'g>(cell: &'g RcuCell<Vec<u32>>, guard: &'g impl RcuGuard) -> u32 {
///     cell.load(guard)[0]
/// }
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let cell = RcuCell::new_in(&srcu, vec![4, 5]);
/// let ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// assert_eq!(first(&cell, &guard), 4);
/// ```
pub trait RcuGuard: sealed::Sealed {
    /// The domain this is a section of.
    #[doc(hidden)]
    fn domain_key(&self) -> DomainKey;
}

impl sealed::Sealed for ReadGuard<'_> {}
impl RcuGuard for ReadGuard<'_> {
    #[inline]
    fn domain_key(&self) -> DomainKey {
        DomainKey::of(self.domain_state())
    }
}

impl<F: SrcuFlavor, B: SectionBrand, C: Context> sealed::Sealed for SrcuGuard<'_, F, B, C> {}
impl<F: SrcuFlavor, B: SectionBrand, C: Context> RcuGuard for SrcuGuard<'_, F, B, C> {
    #[inline]
    fn domain_key(&self) -> DomainKey {
        DomainKey::of(self.domain_state())
    }
}

impl<F: SrcuFlavor, B: SectionBrand> sealed::Sealed for SrcuOwnedGuard<'_, F, B> {}
impl<F: SrcuFlavor, B: SectionBrand> RcuGuard for SrcuOwnedGuard<'_, F, B> {
    #[inline]
    fn domain_key(&self) -> DomainKey {
        DomainKey::of(self.domain_state())
    }
}

/// A domain of any flavour: [`Domain`] or [`SrcuStruct`]. What `RcuCell::new_in` and the
/// collections' `*_in` constructors take. Sealed.
pub trait RcuDomain: sealed::Sealed {
    /// The domain's engine: for a sleepable domain, the `Domain` it runs on, whose classic
    /// (non-blocking) sections its grace periods wait for too. Not for use outside the RCU
    /// crates: its waits do not check the sleepable domain's brand.
    #[doc(hidden)]
    fn as_domain(&self) -> &Domain;

    /// What the guards of this domain's sections return from `RcuGuard::domain_key`.
    #[doc(hidden)]
    fn domain_key(&self) -> DomainKey {
        DomainKey::of(self.as_domain().state())
    }
}

impl sealed::Sealed for QsbrOnline<'_, '_> {}
impl RcuGuard for QsbrOnline<'_, '_> {
    #[inline]
    fn domain_key(&self) -> DomainKey {
        DomainKey::of(self.domain_state())
    }
}

impl sealed::Sealed for QsbrRead<'_> {}
impl RcuGuard for QsbrRead<'_> {
    #[inline]
    fn domain_key(&self) -> DomainKey {
        DomainKey::of(self.domain_state())
    }
}

impl sealed::Sealed for QsbrDomain {}
impl RcuDomain for QsbrDomain {
    fn as_domain(&self) -> &Domain {
        self.domain()
    }
}

impl sealed::Sealed for Domain {}
impl RcuDomain for Domain {
    fn as_domain(&self) -> &Domain {
        self
    }
}

impl<F: SrcuFlavor, B: SectionBrand> sealed::Sealed for SrcuStruct<F, B> {}
impl<F: SrcuFlavor, B: SectionBrand> RcuDomain for SrcuStruct<F, B> {
    fn as_domain(&self) -> &Domain {
        self.domain()
    }
}

/// A shared handle to a domain is the domain, as `&Domain` was before this trait: `new_in(&arc)`
/// keeps compiling.
impl<D: RcuDomain + ?Sized> sealed::Sealed for std::sync::Arc<D> {}
impl<D: RcuDomain + ?Sized> RcuDomain for std::sync::Arc<D> {
    fn as_domain(&self) -> &Domain {
        (**self).as_domain()
    }
}

impl<D: RcuDomain + ?Sized> sealed::Sealed for Box<D> {}
impl<D: RcuDomain + ?Sized> RcuDomain for Box<D> {
    fn as_domain(&self) -> &Domain {
        (**self).as_domain()
    }
}

impl<D: RcuDomain + ?Sized> sealed::Sealed for &D {}
impl<D: RcuDomain + ?Sized> RcuDomain for &D {
    fn as_domain(&self) -> &Domain {
        (**self).as_domain()
    }
}

impl ReadGuard<'_> {
    /// True if this guard is a read section of `domain`: what a data structure of that
    /// domain checks before trusting the guard to keep its data alive (as
    /// [`RcuCell::load`](crate::RcuCell::load) does).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{Domain, DomainConfig};
    /// let other = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx);
    /// assert!(guard.is_of(Domain::global()));
    /// assert!(!guard.is_of(&other));
    /// ```
    #[inline]
    pub fn is_of(&self, domain: &impl RcuDomain) -> bool {
        core::ptr::eq(self.domain_state(), domain.as_domain().state())
    }
}

impl<F: SrcuFlavor, B: SectionBrand, C: Context> SrcuGuard<'_, F, B, C> {
    /// True if this is a section of `domain`.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let (a, b): (SrcuStruct, SrcuStruct) =
    ///     (SrcuStruct::new(DomainConfig::new()), SrcuStruct::new(DomainConfig::new()));
    /// let mut ctx = Sleepable::enter();
    /// let guard = a.read_lock(&mut ctx);
    /// assert!(guard.is_of(&a) && !guard.is_of(&b));
    /// ```
    pub fn is_of(&self, domain: &impl RcuDomain) -> bool {
        self.domain_key() == domain.domain_key()
    }
}

impl<F: SrcuFlavor, B: SectionBrand> SrcuOwnedGuard<'_, F, B> {
    /// True if this is a section of `domain`.
    pub fn is_of(&self, domain: &impl RcuDomain) -> bool {
        self.domain_key() == domain.domain_key()
    }
}
