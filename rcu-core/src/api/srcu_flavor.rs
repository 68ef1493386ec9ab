//! A sleepable domain's reader flavour, as a type: `Fast` or `Plain` (`SrcuStruct`'s first
//! type parameter), and what the engine keeps of it (`ReaderFlavor`).

use crate::read::flavor::ReaderFlavor;

mod sealed {
    pub trait Sealed {}
}

/// A sleepable domain's reader flavour: [`Fast`] or [`Plain`]. Sealed.
pub trait SrcuFlavor: sealed::Sealed + Send + Sync + 'static {
    /// The flavour's name, for reports.
    const NAME: &'static str;
    #[doc(hidden)]
    const FLAVOR: FlavorId;
}

/// The engine's name of a flavour (not for use outside this crate).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct FlavorId(pub(crate) ReaderFlavor);

/// The default flavour (the kernel's `srcu_read_lock_fast`): a section's lock is an add and
/// a compiler barrier, no fence; each grace period pays with one heavy barrier (a
/// membarrier interrupting the CPUs that run the process's threads).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fast;

/// The flavour whose sections pay a fence at their lock (the kernel's `srcu_read_lock`), so
/// that grace periods never interrupt other CPUs: for domains whose grace periods are
/// frequent beside latency-sensitive threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl sealed::Sealed for Fast {}
impl sealed::Sealed for Plain {}
impl SrcuFlavor for Fast {
    const NAME: &'static str = "fast";
    const FLAVOR: FlavorId = FlavorId(ReaderFlavor::SrcuFast);
}
impl SrcuFlavor for Plain {
    const NAME: &'static str = "plain";
    const FLAVOR: FlavorId = FlavorId(ReaderFlavor::SrcuPlain);
}
