//! Glue between `#[unikit::main]` and the kernel.
use core::fmt::Debug;

/// What `main` may return, as in `std::process::Termination`.
pub trait Termination {
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl Termination for u8 {
    fn report(self) -> i32 {
        self as i32
    }
}

impl<T: Termination, E: Debug> Termination for Result<T, E> {
    fn report(self) -> i32 {
        match self {
            Ok(v) => v.report(),
            Err(e) => {
                crate::eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

pub fn run<T: Termination>(crate_name: &'static str, main: fn() -> T) -> i32 {
    unikit_kernel::boot::set_default_program(crate_name);
    // Every service linked into the app declares the kernel options it
    // reads; what is left over was a typo or meant for another image.
    unikit_kernel::boot::report_unknown_options(&[unikit_net::KERNEL_OPTIONS]);
    unikit_kernel::boot::mark_main_entered();
    main().report()
}
