//! The context half of an RCU read section: the thread counts as inside one, and code inside
//! gets an `Atomic` token, while the token it was entered from stays borrowed.

use crate::capability::Context;
use crate::depths;
use crate::token::Atomic;
use crate::validate;

/// The context half of an RCU read section, for the RCU runtime's read guard.
///
/// While it lives the thread counts as inside a read section, the token it was entered from
/// stays exclusively borrowed, and [`ReadSection::token`] hands out the `Atomic` token that
/// code inside the section uses. The grace-period half (announcing the reader to writers)
/// belongs to the runtime; this type knows nothing about it.
///
/// ```
/// use rcu_ctx::{thread_state, ReadSection, Sleepable};
/// let mut ctx = Sleepable::enter();
/// let section = ReadSection::enter(&mut ctx);
/// let token = section.token(); // the `Atomic` token for code inside
/// token_user(token);
/// assert_eq!(thread_state::snapshot().read_depth, 1);
/// drop(section);
/// assert_eq!(thread_state::snapshot().read_depth, 0);
///
/// fn token_user<C: rcu_ctx::Context>(ctx: &C) {
///     ctx.validate();
/// }
/// ```
#[derive(Debug)]
#[must_use = "the read section ends when this value is dropped"]
pub struct ReadSection<'parent> {
    // Not dropped: a read section is accounted as `read_depth`, not as an atomic scope.
    token: core::mem::ManuallyDrop<Atomic<'parent>>,
}

impl<'parent> ReadSection<'parent> {
    /// Enters a read section from any context; `parent` is unusable until this is dropped.
    ///
    /// # Panics
    /// If the thread is already `u32::MAX` read sections deep (possible only by forgetting
    /// them in a loop): a depth never wraps, and the refused section is not counted.
    ///
    /// ```
    /// use rcu_ctx::{Context, ReadSection, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// let mut spin = ctx.atomic();
    /// let section = ReadSection::enter(&mut spin); // from any token
    /// drop(section);
    /// ```
    #[inline]
    #[track_caller]
    pub fn enter<C: Context>(parent: &'parent mut C) -> Self {
        parent.validate();
        depths::enter_read();
        ReadSection { token: core::mem::ManuallyDrop::new(Atomic::marker()) }
    }

    /// Enters a read section nested in code that only holds an `Atomic` token (an enclosing
    /// read section, an atomic scope, a callback). Borrowing an `Atomic` shared is enough:
    /// using it inside the nested section can do nothing the nested section forbids.
    ///
    /// # Panics
    /// As [`ReadSection::enter`], at `u32::MAX` sections.
    ///
    /// ```
    /// use rcu_ctx::{thread_state, ReadSection, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// let outer = ReadSection::enter(&mut ctx);
    /// let inner = ReadSection::enter_nested(outer.token()); // a shared borrow is enough
    /// assert_eq!(thread_state::snapshot().read_depth, 2);
    /// drop(inner);
    /// drop(outer);
    /// ```
    #[inline]
    #[track_caller]
    pub fn enter_nested(parent: &'parent Atomic<'_>) -> Self {
        Context::validate(parent);
        depths::enter_read();
        ReadSection { token: core::mem::ManuallyDrop::new(Atomic::marker()) }
    }

    /// The `Atomic` token for code inside the section; it cannot outlive the section.
    ///
    /// ```
    /// use rcu_ctx::{Atomic, ReadSection, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// let section = ReadSection::enter(&mut ctx);
    /// let token: &Atomic<'_> = section.token();
    /// let _ = token;
    /// drop(section);
    /// ```
    #[inline]
    pub fn token(&self) -> &Atomic<'parent> {
        &self.token
    }
}

impl Drop for ReadSection<'_> {
    #[inline]
    fn drop(&mut self) {
        if !depths::exit_read() {
            validate::report_unbalanced("read section");
        }
    }
}
