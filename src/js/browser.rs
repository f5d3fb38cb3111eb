//! The browser build's bindings: `beginAuthorization` / `completeAuthorization` as plain wasm
//! exports over bytes, with no wasm-bindgen glue, so a page loads a few kilobytes in all. The
//! package's `browser.js` is the other half: it writes what it saw of the JS arguments into wasm
//! memory and turns the answer into an object or an `AuthError`. Every decision (which options
//! exist, what a value means, the PKCE and callback rules, every message) is made by the same
//! core calls as the server build's `js::pkce`.
//!
//! Input: items of `tag: u8, len: u32 LE, bytes`. An options argument is an `O` item (a plain
//! object; `N`: anything else) followed by `K` (own key) items, each followed by its value: `S`
//! string, `M` missing (undefined / null), `X` another type, `U` reading it threw.
//! `complete` first takes the callback URL as `S` (a string or a URL's href) or `X`.
//! Output: `len: u32 LE` (of the whole buffer), then `R` (result) or `E` (error), then strings as
//! `len: u32 LE, bytes`: `R` url, state, codeVerifier (begin) or code (complete); `E` code,
//! message, hint, retryable ("1" / "0").

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

use crate::config::{known_option, not_an_object, read_str, Seen};
use crate::error::{AuthError, ErrorCode};
use crate::pkce::{begin, parse_callback, BeginOptions, BEGIN_OPTIONS, COMPLETE_OPTIONS, NOT_A_CALLBACK_URL, RANDOM_BYTES};

#[link(wasm_import_module = "qauth")]
extern "C" {
    /// Fills `len` bytes at `ptr` from the platform CSPRNG (`crypto.getRandomValues`); 1 when
    /// it did, 0 when there is none (never a predictable verifier instead).
    fn random(ptr: *mut u8, len: usize) -> u32;
}

/// Memory for an input of `len` bytes, which the next `qauth_begin` / `qauth_complete` consumes.
/// It starts a call: nothing of an earlier one is live any more, so memory is rewound first (also
/// after a call that trapped midway).
#[no_mangle]
pub(super) extern "C" fn qauth_alloc(len: usize) -> *mut u8 {
    ALLOCATOR.rewind();
    let mut v = Vec::<u8>::with_capacity(len);
    let p = v.as_mut_ptr();
    core::mem::forget(v);
    p
}

/// Releases an answer buffer (its length is in its first four bytes); with this allocator the
/// memory itself comes back at the next call's rewind.
///
/// # Safety
/// `ptr` and `len` are an answer of `qauth_begin` / `qauth_complete`, released once.
#[no_mangle]
pub(super) unsafe extern "C" fn qauth_free(ptr: *mut u8, len: usize) {
    drop(Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)));
}

/// # Safety
/// `ptr`/`len` come from `qauth_alloc(len)`, filled by the caller; consumed here.
#[no_mangle]
pub(super) unsafe extern "C" fn qauth_begin(ptr: *mut u8, len: usize) -> *mut u8 {
    let input = Vec::from_raw_parts(ptr, len, len);
    let answer = (|| {
        let mut items = Items(&input);
        let o = Record::read(&mut items, "beginAuthorization options", BEGIN_OPTIONS, ErrorCode::InvalidConfig)?;
        let opts = BeginOptions::read(|name| o.str(name))?;
        let mut bytes = [0u8; RANDOM_BYTES];
        if random(bytes.as_mut_ptr(), bytes.len()) != 1 {
            return Err(AuthError::config("crypto", "getRandomValues is not available"));
        }
        let b = begin(opts, &bytes)?;
        Ok([b.url, b.state, b.code_verifier])
    })();
    answer_of(answer)
}

/// # Safety
/// As `qauth_begin`.
#[no_mangle]
pub(super) unsafe extern "C" fn qauth_complete(ptr: *mut u8, len: usize) -> *mut u8 {
    let input = Vec::from_raw_parts(ptr, len, len);
    let answer = (|| {
        let mut items = Items(&input);
        let url = match items.next() {
            Some((b'S', url)) => String::from_utf8(url.to_vec()).map_err(|_| bad_input())?,
            _ => return Err(AuthError::new(ErrorCode::InvalidRequest, NOT_A_CALLBACK_URL)),
        };
        let o = Record::read(&mut items, "completeAuthorization options", COMPLETE_OPTIONS, ErrorCode::InvalidRequest)?;
        let code = parse_callback(&url, o.str("state")?.as_deref())?;
        Ok([String::from(code.expose())])
    })();
    answer_of(answer)
}

fn answer_of<const N: usize>(answer: Result<[String; N], AuthError>) -> *mut u8 {
    let mut out = vec![0u8; 4];
    match answer {
        Ok(strings) => {
            out.push(b'R');
            for s in &strings {
                put(&mut out, s);
            }
        }
        Err(e) => {
            out.push(b'E');
            for s in [e.code.as_str(), &e.message, e.code.hint(), if e.retryable() { "1" } else { "0" }] {
                put(&mut out, s);
            }
        }
    }
    let n = out.len() as u32;
    for (slot, b) in out.iter_mut().zip(n.to_le_bytes()) {
        *slot = b;
    }
    Box::into_raw(out.into_boxed_slice()) as *mut u8
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Bytes that do not follow the format above (only a broken `browser.js` writes such).
fn bad_input() -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, "qauth's browser build received malformed arguments")
}

/// The items of an input buffer.
struct Items<'a>(&'a [u8]);

impl<'a> Iterator for Items<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, rest) = self.0.split_first()?;
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let end = len.checked_add(4)?;
        let body = rest.get(4..end)?;
        self.0 = rest.get(end..)?;
        Some((tag, body))
    }
}

/// An options argument as `browser.js` saw it: its own keys (all checked against `known`) and
/// what was under each.
struct Record {
    entries: Vec<(String, Seen)>,
    code: ErrorCode,
}

impl Record {
    fn read(items: &mut Items, what: &str, known: &[&str], code: ErrorCode) -> Result<Record, AuthError> {
        match items.next() {
            Some((b'O', _)) => {}
            Some((b'N', _)) => return Err(not_an_object(what, code)),
            _ => return Err(bad_input()),
        }
        let mut entries = Vec::new();
        while let Some((b'K', key)) = items.next() {
            let key = String::from_utf8(key.to_vec()).map_err(|_| bad_input())?;
            known_option(&key, known, what, code)?;
            let seen = match items.next() {
                Some((b'S', s)) => Seen::Str(String::from_utf8(s.to_vec()).map_err(|_| bad_input())?),
                Some((b'M', _)) => Seen::Missing,
                Some((b'X', _)) => Seen::Other,
                Some((b'U', _)) => Seen::Unreadable,
                _ => return Err(bad_input()),
            };
            entries.push((key, seen));
        }
        Ok(Record { entries, code })
    }

    fn str(&self, name: &str) -> Result<Option<String>, AuthError> {
        let seen = match self.entries.iter().find(|(k, _)| k == name) {
            Some((_, Seen::Str(s))) => Seen::Str(s.clone()),
            Some((_, Seen::Other)) => Seen::Other,
            Some((_, Seen::Unreadable)) => Seen::Unreadable,
            _ => Seen::Missing,
        };
        read_str(name, seen, self.code)
    }
}

/// The allocator: a bump pointer over memory grown on demand, rewound at the start of each call
/// (`qauth_alloc`): by contract nothing outlives a call (the answer buffer is read by
/// `browser.js` before its next call), so memory never grows past one call's worth. A few dozen
/// bytes of code, where a general allocator would be most of this build.
struct Bump {
    base: Cell<usize>,
    next: Cell<usize>,
}

impl Bump {
    fn rewind(&self) {
        self.next.set(self.base.get());
    }
}

// wasm32 without threads: one thread touches it.
unsafe impl Sync for Bump {}

#[global_allocator]
static ALLOCATOR: Bump = Bump { base: Cell::new(0), next: Cell::new(0) };

const PAGE: usize = 65_536;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.base.get() == 0 {
            // Above everything the module itself placed in memory (data, stack).
            let top = core::arch::wasm32::memory_size(0) * PAGE;
            self.base.set(top);
            self.next.set(top);
        }
        let align = layout.align();
        let Some(start) = self.next.get().checked_add(align - 1).map(|n| n & !(align - 1)) else { return core::ptr::null_mut() };
        let Some(end) = start.checked_add(layout.size()) else { return core::ptr::null_mut() };
        let have = core::arch::wasm32::memory_size(0) * PAGE;
        if end > have && core::arch::wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) == usize::MAX {
            return core::ptr::null_mut();
        }
        self.next.set(end);
        start as *mut u8
    }

    /// Freed all at once, by the next call's rewind.
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

/// A panic (out of memory, a bug) traps: the export throws a `WebAssembly.RuntimeError` and no
/// formatting code is linked in.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
