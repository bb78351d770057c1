//! placeholder
pub mod clock;
pub mod csv;
pub mod housekeeping;
pub mod html;
pub mod linefile;
pub mod period;
pub mod stats;
pub mod store;
pub mod tracker;
pub mod weekly;
#[cfg(test)]
mod testutil;
