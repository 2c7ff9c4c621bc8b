//! The Solo5 hvt ABI, as the tender sees it: the constants and structure
//! layouts of [`unikit_abi::hvt`] and the manifest layout of
//! [`unikit_abi::mft`], shared with the guest (`plat/solo5`). The tender
//! never casts guest memory to a Rust struct; it reads and writes fields
//! one by one at these offsets through bounds-checked accessors.

pub use unikit_abi::hvt::*;
pub use unikit_abi::mft::{
    MFT_ENTRY_SIZE, MFT_HDR_SIZE, MFT_MAX_ENTRIES, MFT_NAME_MAX, MFT_NAME_SIZE, MFT_VERSION, mft_entry, mft_type,
};
