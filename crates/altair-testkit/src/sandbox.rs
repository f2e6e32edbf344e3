//! The local sandbox (filled in below).
