//! placeholder
pub mod period;
