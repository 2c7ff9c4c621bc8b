//! Linux error numbers (asm-generic/errno-base.h, errno.h) and the mapping
//! from the VFS's and the network stack's errors.

/// A Linux error number; system calls return its negation.
pub type Errno = i64;

macro_rules! errnos {
    ($($name:ident = $v:expr),* $(,)?) => {
        $(#[allow(missing_docs)] pub const $name: Errno = $v;)*
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
    EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23,
    EMFILE = 24, ENOTTY = 25, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31,
    EPIPE = 32, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39,
    ELOOP = 40, ENODATA = 61, ETIME = 62, EOVERFLOW = 75, ENOTSOCK = 88, EDESTADDRREQ = 89,
    EMSGSIZE = 90, ENOPROTOOPT = 92, EPROTONOSUPPORT = 93, EOPNOTSUPP = 95, EAFNOSUPPORT = 97,
    EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETUNREACH = 101, ECONNABORTED = 103, ECONNRESET = 104,
    ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110, ECONNREFUSED = 111,
    EHOSTUNREACH = 113, EALREADY = 114, EINPROGRESS = 115,
}

/// The errno of a file-system error.
pub fn from_fs(e: &unikit_fs::Error) -> Errno {
    use unikit_fs::ErrorKind as K;
    match e.kind() {
        K::NotFound => ENOENT,
        K::PermissionDenied => EACCES,
        K::AlreadyExists => EEXIST,
        K::InvalidInput | K::InvalidFilename => EINVAL,
        K::IsADirectory => EISDIR,
        K::NotADirectory => ENOTDIR,
        K::DirectoryNotEmpty => ENOTEMPTY,
        K::ReadOnlyFilesystem => EROFS,
        K::StorageFull => ENOSPC,
        K::FileTooLarge => EFBIG,
        K::CrossesDevices => EXDEV,
        K::FilesystemLoop => ELOOP,
        K::Unsupported => EOPNOTSUPP,
        K::OutOfMemory => ENOMEM,
        _ => EIO,
    }
}
