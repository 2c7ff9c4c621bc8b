//! Plain old data.

/// A type for which every bit pattern of its size is a valid value and
/// which has no padding, pointers or drop glue: it can be read from memory a
/// device (or a hostile peer) wrote, and written as raw bytes.
///
/// # Safety
/// Implement only for types meeting the above (integers, arrays of them,
/// `#[repr(C)]` structs of them without padding).
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: primitive integers: every bit pattern is valid, no padding.
        unsafe impl Pod for $t {}
    )*};
}
pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

// SAFETY: an array of `Pod` has no padding between elements and every bit
// pattern of each element is valid.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}
