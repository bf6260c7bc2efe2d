//! The crate's only unsafe code: libc calls that have no safe wrapper.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;

/// `if_nametoindex(3)` in the calling thread's network namespace (sysfs may show another
/// namespace's interfaces when the process called setns without remounting /sys).
pub(crate) fn if_nametoindex(iface: &str) -> io::Result<u32> {
    let name = CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the function
    // only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}
