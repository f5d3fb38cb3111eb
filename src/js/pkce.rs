//! `beginAuthorization` / `completeAuthorization` (ops `BEGIN`, `COMPLETE`), the same in both
//! builds: the browser build is only these; the server build has them for a backend-for-frontend.

use alloc::string::String;

use super::wire::{Items, Out, Record};
use crate::error::{AuthError, ErrorCode};
use crate::pkce::{begin as begin_pkce, parse_callback, BeginOptions, BEGIN_OPTIONS, COMPLETE_OPTIONS, NOT_A_CALLBACK_URL, RANDOM_BYTES};

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "qauth")]
extern "C" {
    /// Fills `len` bytes at `ptr` from the platform CSPRNG (`crypto.getRandomValues`); 1 when
    /// it did, 0 when there is none (never a predictable verifier instead).
    fn random(ptr: *mut u8, len: usize) -> u32;
}

/// Natively (tests) there is no host: "no CSPRNG", which `begin` must refuse.
#[cfg(not(target_arch = "wasm32"))]
unsafe fn random(_ptr: *mut u8, _len: usize) -> u32 {
    0
}

/// Items: the options record. Answer `R`: url, state, codeVerifier.
pub(super) fn begin(items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
    let mut o = Record::read(items, "beginAuthorization options", BEGIN_OPTIONS, ErrorCode::InvalidConfig)?;
    let opts = BeginOptions::read(|name| o.str(name))?;
    let mut bytes = [0u8; RANDOM_BYTES];
    // SAFETY: the import writes exactly `len` bytes into the buffer it is given.
    if unsafe { random(bytes.as_mut_ptr(), bytes.len()) } != 1 {
        return Err(AuthError::config("crypto", "getRandomValues is not available"));
    }
    let b = begin_pkce(opts, &bytes)?;
    out.kind(b'R').str(&b.url).str(&b.state).str(&b.code_verifier);
    Ok(())
}

/// Items: the callback URL (`S`: a string or a URL's href; anything else `X`), the options
/// record. Answer `R`: code.
pub(super) fn complete(items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
    let url: String = items.str()?.ok_or_else(|| AuthError::new(ErrorCode::InvalidRequest, NOT_A_CALLBACK_URL))?;
    let mut o = Record::read(items, "completeAuthorization options", COMPLETE_OPTIONS, ErrorCode::InvalidRequest)?;
    let code = parse_callback(&url, o.str("state")?.as_deref())?;
    out.kind(b'R').str(code.expose());
    Ok(())
}
