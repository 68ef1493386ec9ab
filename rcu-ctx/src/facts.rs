//! Compile-time facts about the tokens. If one of these stops holding, the crate stops
//! compiling: the guarantees in DESIGN §3 are properties of the types, checked here.

use static_assertions::{assert_impl_all, assert_not_impl_any, const_assert_eq};

use crate::{
    Atomic, Context, ContextKind, MayAlloc, MayReclaim, MaySleep, NoReclaim, Sleepable,
    SleepableSection, Unbranded,
};

/// A sleepable section's token entered from a `Sleepable`, an `Atomic` and a `NoReclaim`.
type InSleepable = SleepableSection<'static, Unbranded, Sleepable>;
type InAtomic = SleepableSection<'static, Unbranded, Atomic<'static>>;
type InNoReclaim = SleepableSection<'static, Unbranded, NoReclaim<'static>>;

// Zero-sized: passing a token costs nothing at run time.
const_assert_eq!(core::mem::size_of::<Sleepable>(), 0);
const_assert_eq!(core::mem::size_of::<NoReclaim<'static>>(), 0);
const_assert_eq!(core::mem::size_of::<Atomic<'static>>(), 0);
const_assert_eq!(core::mem::size_of::<crate::ReadSection<'static>>(), 0);
const_assert_eq!(core::mem::size_of::<InSleepable>(), 0);

// A context belongs to one thread and is never duplicated.
assert_not_impl_any!(Sleepable: Send, Sync, Clone, Copy);
assert_not_impl_any!(NoReclaim<'static>: Send, Sync, Clone, Copy);
assert_not_impl_any!(Atomic<'static>: Send, Sync, Clone, Copy);
assert_not_impl_any!(crate::ReadSection<'static>: Send, Sync, Clone, Copy);
assert_not_impl_any!(InSleepable: Send, Sync, Clone, Copy);

// The capability table of DESIGN §3.
assert_impl_all!(Sleepable: Context, MayAlloc, MaySleep, MayReclaim);
assert_impl_all!(NoReclaim<'static>: Context, MayAlloc, MaySleep);
assert_not_impl_any!(NoReclaim<'static>: MayReclaim);
assert_impl_all!(Atomic<'static>: Context);
assert_not_impl_any!(Atomic<'static>: MayAlloc, MaySleep, MayReclaim);

// A sleepable section's token has its parent's capabilities, no more.
assert_impl_all!(InSleepable: Context, MayAlloc, MaySleep, MayReclaim);
assert_impl_all!(InNoReclaim: Context, MayAlloc, MaySleep);
assert_not_impl_any!(InNoReclaim: MayReclaim);
assert_impl_all!(InAtomic: Context);
assert_not_impl_any!(InAtomic: MayAlloc, MaySleep, MayReclaim);

// Each token names its own kind.
const _: () = assert!(matches!(<Sleepable as Context>::KIND, ContextKind::Sleepable));
const _: () = assert!(matches!(<NoReclaim<'static> as Context>::KIND, ContextKind::NoReclaim));
const _: () = assert!(matches!(<Atomic<'static> as Context>::KIND, ContextKind::Atomic));
const _: () = assert!(matches!(<InSleepable as Context>::KIND, ContextKind::Sleepable));
const _: () = assert!(matches!(<InAtomic as Context>::KIND, ContextKind::Atomic));
