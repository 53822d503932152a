//! What the derives of `understudy-macros` expand through, so that one expansion fits both
//! builds of this crate.
//!
//! ractor's `Message` trait has a blanket impl for every type when its `cluster` feature is
//! off and none when it is on, and remote messages (their wire hooks live in ractor's
//! `Message`) exist only with this crate's `remote` feature. A proc macro cannot see another
//! crate's features, so the derives emit these macros and this crate, which knows, picks the
//! expansion.
//!
//! Assumes ractor's `cluster` is on exactly when `remote` is: if something else in a build
//! turns on ractor's `cluster` without understudy's, turn on understudy's `cluster` (or
//! `remote`) too.

/// `impl .. ractor::Message for T` given its head: emitted as an empty impl where ractor needs
/// one (with `cluster`), dropped where ractor's blanket impl already covers every type.
#[cfg(feature = "remote")]
#[doc(hidden)]
#[macro_export]
macro_rules! __message_impl {
    ($($impl_head:tt)*) => { $($impl_head)* {} };
}

/// `impl .. ractor::Message for T` given its head: emitted as an empty impl where ractor needs
/// one (with `cluster`), dropped where ractor's blanket impl already covers every type.
#[cfg(not(feature = "remote"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __message_impl {
    ($($impl_head:tt)*) => {};
}

/// The items that make a type a remote message, or, without the `remote` feature, one clear
/// error naming the feature (ractor's blanket `Message` impl keeps the rest of the program
/// compiling, so it is the only error). `$what` names the macro the user wrote.
#[cfg(feature = "remote")]
#[doc(hidden)]
#[macro_export]
macro_rules! __remote_message {
    ($what:literal; $($items:tt)*) => { $($items)* };
}

/// The items that make a type a remote message, or, without the `remote` feature, one clear
/// error naming the feature (ractor's blanket `Message` impl keeps the rest of the program
/// compiling, so it is the only error). `$what` names the macro the user wrote.
#[cfg(not(feature = "remote"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __remote_message {
    ($what:literal; $($items:tt)*) => {
        ::core::compile_error!(::core::concat!(
            $what,
            " makes a message that crosses the network, which needs understudy's `cluster` \
             feature (or just `remote`, for a crate that only defines such messages): \
             `understudy = { version = \"..\", features = [\"cluster\"] }`. \
             For a local-only message, use #[derive(Message)] or #[messages] without `remote`."
        ));
    };
}
