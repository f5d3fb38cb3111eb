//! The browser build's allocator. Its only ops are `BEGIN` and `COMPLETE`, and nothing outlives a
//! call (the answer is read by the driver before its next call), so a bump pointer rewound at
//! the start of each call (`qauth_alloc`) is all it needs: a few dozen bytes of code, where a
//! general allocator would be most of this build.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

pub(super) fn rewind() {
    ALLOCATOR.rewind();
}

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
