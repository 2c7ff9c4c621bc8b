//! Ending the program.

/// Stops the unikernel with `code` as the exit status seen by the host.
pub fn exit(code: i32) -> ! {
    unikit_kernel::exit::exit(code)
}

/// Stops immediately with a panic report.
pub fn abort() -> ! {
    panic!("abort() called")
}
