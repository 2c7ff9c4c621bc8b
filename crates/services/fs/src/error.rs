//! Errors shaped like `std::io::Error`: a kind, plus the path and a detail
//! when they are known.
use crate::kdev::DevError;
use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt;

pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What went wrong, as in `std::io::ErrorKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    AlreadyExists,
    InvalidInput,
    InvalidData,
    IsADirectory,
    NotADirectory,
    DirectoryNotEmpty,
    ReadOnlyFilesystem,
    StorageFull,
    FileTooLarge,
    UnexpectedEof,
    WriteZero,
    CrossesDevices,
    FilesystemLoop,
    InvalidFilename,
    Unsupported,
    OutOfMemory,
    /// The device failed the request.
    Io,
    Other,
}

impl ErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::NotFound => "no such file or directory",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::AlreadyExists => "file exists",
            ErrorKind::InvalidInput => "invalid argument",
            ErrorKind::InvalidData => "invalid data",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::DirectoryNotEmpty => "directory not empty",
            ErrorKind::ReadOnlyFilesystem => "read-only file system",
            ErrorKind::StorageFull => "no space left on device",
            ErrorKind::FileTooLarge => "file too large",
            ErrorKind::UnexpectedEof => "unexpected end of file",
            ErrorKind::WriteZero => "write returned zero bytes",
            ErrorKind::CrossesDevices => "cross-device link (rename across mounts)",
            ErrorKind::FilesystemLoop => "too many levels of symbolic links",
            ErrorKind::InvalidFilename => "invalid file name",
            ErrorKind::Unsupported => "operation not supported",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::Io => "I/O error",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file-system error: `"<path>: <kind> (<detail>)"` when displayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    path: Option<String>,
    detail: Option<Cow<'static, str>>,
}

impl Error {
    pub const fn new(kind: ErrorKind) -> Self {
        Self { kind, path: None, detail: None }
    }

    pub fn with_detail(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, path: None, detail: Some(detail.into()) }
    }

    /// Attaches the path the operation was about (kept if one is set).
    pub fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

impl From<DevError> for Error {
    fn from(e: DevError) -> Self {
        let kind = match e {
            DevError::ReadOnly => ErrorKind::ReadOnlyFilesystem,
            DevError::OutOfRange | DevError::BadLength => ErrorKind::InvalidInput,
            _ => ErrorKind::Io,
        };
        let detail = match e {
            DevError::Broken(why) => Cow::Owned(alloc::format!("device protocol violation: {why}")),
            DevError::WouldBlock => Cow::Borrowed("device: operation would block"),
            DevError::BadLength => Cow::Borrowed("device: bad buffer length"),
            DevError::OutOfRange => Cow::Borrowed("device: request past the end"),
            DevError::Io => Cow::Borrowed("device reported an error"),
            DevError::ReadOnly => Cow::Borrowed("device is read-only"),
        };
        Error::with_detail(kind, detail)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(self.kind.as_str())?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl core::error::Error for Error {}
