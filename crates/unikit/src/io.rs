//! Console output.
use core::fmt;

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    unikit_kernel::console::_print(args);
}

#[doc(hidden)]
pub fn _eprint(args: fmt::Arguments) {
    unikit_kernel::console::_print(args);
}
