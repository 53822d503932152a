//! The registry's pure cores: decisions as functions of their inputs, tested without a
//! cluster.

pub mod choose;
pub mod command;
pub mod placement;
pub mod reconcile;
pub mod table;
