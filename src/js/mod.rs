//! The bindings: the only code that knows wasm memory. Both builds are `no_std` wasm with plain
//! exports; the package's JS (`pkg-template/wire.js` and the entries) moves bytes to and from
//! them, and performs what the server build's ops ask for (`pkg-template/client.js`).
//!
//! - `wire`: the byte format, and the options record every argument is read as;
//! - `pkce`: `beginAuthorization` / `completeAuthorization` (both builds);
//! - `server` (the `server` feature): the clients' ops; `heap`, its allocator;
//! - `browser` (without it): the browser build's bump allocator.
//!
//! Exports: `qauth_alloc(len)` (an input buffer), `qauth_call(op, handle, now, ptr, len)` (runs
//! an op, consuming the input; answers an output buffer), `qauth_free(ptr, len)` (an output
//! buffer, once read).

use alloc::boxed::Box;
use alloc::vec::Vec;

mod pkce;
mod wire;

#[cfg(all(feature = "server", target_arch = "wasm32"))]
mod heap;
#[cfg(feature = "server")]
mod server;

#[cfg(all(not(feature = "server"), target_arch = "wasm32"))]
mod browser;

use crate::error::AuthError;

const BEGIN: u32 = 1;
const COMPLETE: u32 = 2;

/// Memory for an input of `len` bytes, which the next `qauth_call` consumes; null when it cannot
/// be had (memory cannot grow): the driver refuses the call rather than trap, which would end the
/// instance.
#[no_mangle]
pub extern "C" fn qauth_alloc(len: usize) -> *mut u8 {
    #[cfg(all(not(feature = "server"), target_arch = "wasm32"))]
    browser::rewind();
    match core::alloc::Layout::array::<u8>(len) {
        // What `Vec::from_raw_parts` in `qauth_call` takes back: nothing allocated for nothing.
        _ if len == 0 => core::ptr::NonNull::dangling().as_ptr(),
        // SAFETY: a layout of non-zero size; a null answer is passed on, not used.
        Ok(layout) => unsafe { alloc::alloc::alloc(layout) },
        Err(_) => core::ptr::null_mut(),
    }
}

/// Releases an answer buffer (its length is in its first four bytes).
///
/// # Safety
/// `ptr` and `len` are an answer of `qauth_call`, released once.
#[no_mangle]
pub unsafe extern "C" fn qauth_free(ptr: *mut u8, len: usize) {
    drop(Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)));
}

/// Runs op `op` (on client `handle`, at wall-clock `now` ms) with the items at `ptr`/`len`.
///
/// # Safety
/// `ptr`/`len` come from `qauth_alloc(len)`, filled by the caller; consumed here.
#[no_mangle]
pub unsafe extern "C" fn qauth_call(op: u32, handle: u32, now: f64, ptr: *mut u8, len: usize) -> *mut u8 {
    let input = Vec::from_raw_parts(ptr, len, len);
    let mut items = wire::Items(&input);
    let mut out = wire::Out::default();
    let r: Result<(), AuthError> = match op {
        BEGIN => pkce::begin(&mut items, &mut out),
        COMPLETE => pkce::complete(&mut items, &mut out),
        #[cfg(feature = "server")]
        _ => server::call(op, handle, now, &mut items, &mut out),
        #[cfg(not(feature = "server"))]
        _ => {
            let _ = (handle, now);
            Err(wire::bad_input())
        }
    };
    if let Err(e) = r {
        // An op that fails answers its error alone, whatever it had written.
        out = wire::Out::default();
        out.error(&e);
    }
    out.finish()
}

/// A panic (out of memory, a bug) traps: the call throws a `WebAssembly.RuntimeError`, and no
/// formatting code is linked in.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
