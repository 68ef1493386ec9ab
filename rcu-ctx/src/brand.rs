//! Brands: types that name sleepable (SRCU) domains, so that the compiler can tell whether a
//! wait for a grace period is made inside a read section of the same domain.
//!
//! A value's identity is invisible to the type system, so two SRCU domains of one type are
//! indistinguishable at compile time. A brand is a type parameter of the domain and of its
//! sections' tokens; a wait checks, at compile time, that no section of the caller's token
//! has the brand of the domain it waits for ([`MayWaitFor`](crate::MayWaitFor)). Domains of
//! one brand count as one: a wait on any of them inside a section of another is refused too,
//! which is conservative (it never lets a self-wait through). [`Unbranded`], the default,
//! is one such brand shared by every domain that names none.

/// A type that names an SRCU domain (or a group of them) for the compile-time wait rule.
/// Make one with [`section_brand!`](crate::section_brand); the trait has no other use.
///
/// Implementing it by hand is safe: `ID` only decides which waits are refused. Two brands
/// with one `ID` count as one (more waits refused), and a type always has a single `ID`, so a
/// wait can never be let through inside a section of its own brand.
pub trait SectionBrand: 'static {
    /// The brand's identity: equal IDs are the same brand.
    const ID: u128;
}

/// The brand of every SRCU domain that names none: inside a section of one, a wait for any
/// unbranded domain is refused at compile time. Brand the domains
/// ([`section_brand!`](crate::section_brand)) to wait for one inside a section of another.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unbranded;

impl SectionBrand for Unbranded {
    const ID: u128 = 0;
}

/// Declares a brand: a zero-sized type implementing [`SectionBrand`] with an ID derived from
/// its module path, name and position, so that every declaration is a distinct brand.
///
/// ```
/// rcu_ctx::section_brand!(pub Routes);
/// rcu_ctx::section_brand!(Sessions);
/// use rcu_ctx::SectionBrand;
/// assert_ne!(Routes::ID, Sessions::ID);
/// assert_ne!(Routes::ID, rcu_ctx::Unbranded::ID);
/// ```
#[macro_export]
macro_rules! section_brand {
    ($(#[$attr:meta])* $vis:vis $name:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        impl $crate::SectionBrand for $name {
            const ID: u128 = $crate::brand_id(concat!(
                module_path!(),
                "::",
                stringify!($name),
                "@",
                file!(),
                ":",
                line!(),
                ":",
                column!()
            ));
        }
    };
}

/// The ID of a brand declared at `site` (FNV-1a, 128 bits), never 0 (which is
/// [`Unbranded`]'s). Public for [`section_brand!`] only.
#[doc(hidden)]
pub const fn brand_id(site: &str) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let bytes = site.as_bytes();
    let mut hash = OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u128;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    if hash == 0 {
        1
    } else {
        hash
    }
}
