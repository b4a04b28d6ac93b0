//! Where objects come from. Every source fills the same [`crate::store::Store`].

pub mod files;
pub mod kube;
