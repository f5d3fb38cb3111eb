//! The byte format between the wasm and the package's JS driver (`pkg-template/wire.js`), the
//! same in both builds. The driver moves bytes; every rule and every message is decided here.
//!
//! A call is `qauth_call(op, handle, now, ptr, len)`: `ptr`/`len` an input buffer from
//! `qauth_alloc`, consumed by the call. Input and output are items `tag: u8, len: u32 LE, bytes`:
//! `S` a UTF-8 string, `D` an f64 (8 bytes LE), `M` missing (undefined / null), `F` a function, `X` a
//! value of another type, `U` reading it threw. An options argument is an `O` item (a plain object; `N`:
//! anything else), then for each own key a `K` item and its value; an object value is `J`
//! followed by `P` items, the names of its methods (functions on it or its prototypes).
//! The output buffer starts with its own length (`u32 LE`) and holds records: a `k` item (one
//! byte, the record's kind) and the record's values. Kind `E` is an `AuthError`: code, message,
//! hint, retryable (`D` 0/1), status, retryAfter (`D` or `M`), then its messages.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::{known_option, not_an_object, read_str, Seen};
use crate::error::{AuthError, ErrorCode};

/// Bytes that do not follow the format (only a broken driver writes such).
pub(crate) fn bad_input() -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, "qauth's wasm received malformed arguments")
}

/// The items of an input buffer.
pub(crate) struct Items<'a>(pub(crate) &'a [u8]);

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

impl Items<'_> {
    /// The next item as what the driver saw.
    #[inline(never)]
    pub(crate) fn seen(&mut self) -> Result<Seen, AuthError> {
        let (tag, body) = self.next().ok_or_else(bad_input)?;
        Ok(match tag {
            b'S' => Seen::Str(String::from_utf8(body.to_vec()).map_err(|_| bad_input())?),
            b'D' => Seen::Num(f64::from_le_bytes(body.try_into().map_err(|_| bad_input())?)),
            b'M' => Seen::Missing,
            b'U' => Seen::Unreadable,
            b'F' => Seen::Func,
            b'J' => {
                let mut methods = Vec::new();
                while self.0.first() == Some(&b'P') {
                    let (_, name) = self.next().ok_or_else(bad_input)?;
                    methods.push(String::from_utf8(name.to_vec()).map_err(|_| bad_input())?);
                }
                Seen::Object(methods)
            }
            _ => Seen::Other,
        })
    }

    /// The next item as a string, if it is one.
    #[inline(never)]
    pub(crate) fn str(&mut self) -> Result<Option<String>, AuthError> {
        Ok(match self.seen()? {
            Seen::Str(s) => Some(s),
            _ => None,
        })
    }

    /// The next item as a number, if it is one.
    #[cfg(feature = "server")]
    #[inline(never)]
    pub(crate) fn num(&mut self) -> Result<Option<f64>, AuthError> {
        Ok(match self.seen()? {
            Seen::Num(n) => Some(n),
            _ => None,
        })
    }
}

/// An options argument as the driver saw it: its own keys (all checked against `known`) and
/// what was under each.
pub(crate) struct Record {
    entries: Vec<(String, Seen)>,
    code: ErrorCode,
}

impl Record {
    pub(crate) fn read(items: &mut Items, what: &str, known: &[&str], code: ErrorCode) -> Result<Record, AuthError> {
        match items.next() {
            Some((b'O', _)) => {}
            Some((b'N', _)) => return Err(not_an_object(what, code)),
            _ => return Err(bad_input()),
        }
        let mut entries = Vec::new();
        while items.0.first() == Some(&b'K') {
            let (_, key) = items.next().ok_or_else(bad_input)?;
            let key = String::from_utf8(key.to_vec()).map_err(|_| bad_input())?;
            known_option(&key, known, what, code)?;
            let seen = items.seen()?;
            entries.push((key, seen));
        }
        Ok(Record { entries, code })
    }

    /// What is under `name`, taken out: each option is read once (`Missing` when it is not an
    /// own key, or was read already).
    #[inline(never)]
    pub(crate) fn seen(&mut self, name: &str) -> Seen {
        self.entries.iter_mut().find(|(k, _)| k == name).map_or(Seen::Missing, |(_, s)| core::mem::replace(s, Seen::Missing))
    }

    #[inline(never)]
    pub(crate) fn str(&mut self, name: &str) -> Result<Option<String>, AuthError> {
        read_str(name, self.seen(name), self.code)
    }

    #[cfg(feature = "server")]
    #[inline(never)]
    pub(crate) fn num(&mut self, name: &str) -> Result<Option<f64>, AuthError> {
        crate::config::read_num(name, self.seen(name), self.code)
    }
}

/// An answer being written.
pub(crate) struct Out(Vec<u8>);

impl Default for Out {
    /// Room for a typical answer up front: growing it a push at a time was most of an op's
    /// allocator work.
    fn default() -> Self {
        let mut v = Vec::with_capacity(512);
        v.extend_from_slice(&[0u8; 4]);
        Out(v)
    }
}

impl Out {
    #[inline(never)]
    fn item(&mut self, tag: u8, body: &[u8]) {
        self.0.push(tag);
        self.0.extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.0.extend_from_slice(body);
    }

    /// Starts a record of `kind`.
    #[inline(never)]
    pub(crate) fn kind(&mut self, kind: u8) -> &mut Self {
        self.item(b'k', &[kind]);
        self
    }

    #[inline(never)]
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.item(b'S', s.as_bytes());
        self
    }

    #[inline(never)]
    pub(crate) fn num(&mut self, n: f64) -> &mut Self {
        self.item(b'D', &n.to_le_bytes());
        self
    }

    #[inline(never)]
    pub(crate) fn opt_num(&mut self, n: Option<f64>) -> &mut Self {
        match n {
            Some(n) => self.num(n),
            None => {
                self.item(b'M', &[]);
                self
            }
        }
    }

    /// An `E` record.
    pub(crate) fn error(&mut self, e: &AuthError) -> &mut Self {
        self.kind(b'E').str(e.code.as_str()).str(&e.message).str(e.code.hint()).num(f64::from(u8::from(e.retryable())));
        self.opt_num(e.status.map(f64::from)).opt_num(e.retry_after.map(f64::from));
        for m in &e.messages {
            self.str(m);
        }
        self
    }

    /// The buffer for the driver (it reads it, then hands it to `qauth_free`).
    pub(crate) fn finish(mut self) -> *mut u8 {
        let n = self.0.len() as u32;
        for (slot, b) in self.0.iter_mut().zip(n.to_le_bytes()) {
            *slot = b;
        }
        Box::into_raw(self.0.into_boxed_slice()) as *mut u8
    }
}
