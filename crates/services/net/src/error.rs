//! Errors, named after `std::io`'s so that code ported from std reads the same.
use alloc::borrow::Cow;
use core::fmt;

/// The result of a network operation.
pub type Result<T> = core::result::Result<T, Error>;

/// What went wrong, with the same names as `std::io::ErrorKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An entity (socket, address, name) does not exist.
    NotFound,
    /// The peer answered the connection attempt with a reset.
    ConnectionRefused,
    /// The peer reset an established connection.
    ConnectionReset,
    /// The connection was closed locally (aborted) before the operation finished.
    ConnectionAborted,
    /// The socket is not connected (or no longer).
    NotConnected,
    /// The local address (port) is already bound.
    AddrInUse,
    /// The address is not one of this host's, or no ephemeral port is free.
    AddrNotAvailable,
    /// Writing to a connection whose peer has closed its receiving side.
    BrokenPipe,
    /// A non-blocking operation would have to wait.
    WouldBlock,
    /// An argument was invalid (address, timeout of zero, ...).
    InvalidInput,
    /// Data received or given was malformed.
    InvalidData,
    /// The operation's timeout expired.
    TimedOut,
    /// A write accepted zero bytes.
    WriteZero,
    /// The stream ended before the expected amount of data.
    UnexpectedEof,
    /// The operation is not supported by this stack or socket.
    Unsupported,
    /// Buffers or sockets could not be allocated.
    OutOfMemory,
    /// No network interface is up.
    NetworkDown,
    /// There is no route to the destination network.
    NetworkUnreachable,
    /// The destination host could not be reached (no ARP/NDP answer).
    HostUnreachable,
    /// Anything else; the message says what.
    Other,
}

impl ErrorKind {
    /// A short lower-case description, as `std::io::ErrorKind` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::NotFound => "entity not found",
            ErrorKind::ConnectionRefused => "connection refused",
            ErrorKind::ConnectionReset => "connection reset",
            ErrorKind::ConnectionAborted => "connection aborted",
            ErrorKind::NotConnected => "not connected",
            ErrorKind::AddrInUse => "address in use",
            ErrorKind::AddrNotAvailable => "address not available",
            ErrorKind::BrokenPipe => "broken pipe",
            ErrorKind::WouldBlock => "operation would block",
            ErrorKind::InvalidInput => "invalid input parameter",
            ErrorKind::InvalidData => "invalid data",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::WriteZero => "write zero",
            ErrorKind::UnexpectedEof => "unexpected end of file",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::NetworkDown => "network down",
            ErrorKind::NetworkUnreachable => "network unreachable",
            ErrorKind::HostUnreachable => "host unreachable",
            ErrorKind::Other => "other error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error: a kind plus an optional message saying what happened.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    msg: Option<Cow<'static, str>>,
}

impl Error {
    /// An error of `kind` with a message saying what happened.
    pub fn new(kind: ErrorKind, msg: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, msg: Some(msg.into()) }
    }
    /// Which kind of error this is, for matching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The message, if one was given.
    pub fn message(&self) -> Option<&str> {
        self.msg.as_deref()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self { kind, msg: None }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.msg {
            Some(m) => f.write_str(m),
            None => f.write_str(self.kind.as_str()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.msg {
            Some(m) => write!(f, "{:?}: {}", self.kind, m),
            None => write!(f, "{:?}", self.kind),
        }
    }
}

impl core::error::Error for Error {}
