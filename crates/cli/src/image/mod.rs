//! Disk images for firmware boot (placeholder: the lead's image writer
//! replaces this file).

#[cfg_attr(not(test), allow(dead_code))]
pub mod bios;
