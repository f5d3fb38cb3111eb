//! The server build's allocator: one free list per power-of-two size class, blocks cut from the
//! top of memory. A client lives as long as the isolate, so memory must be freed and reused; what
//! it allocates is a handful of recurring sizes (an answer, a token, a record), so reuse within a
//! class keeps memory flat without coalescing (`tests/js/memory.test.mjs` holds it to that). A
//! few hundred bytes of code where dlmalloc, std's allocator on wasm32, is several kilobytes.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const PAGE: usize = 65_536;
/// Every block is a multiple of 16 bytes and starts on 16: enough for every type we allocate.
const ALIGN: usize = 16;
const CLASSES: usize = 32;

struct Heap {
    /// Per class, the first free block (0: none); a free block holds the address of the next.
    free: UnsafeCell<[usize; CLASSES]>,
    /// Where the next new block starts (0 until the first allocation).
    top: UnsafeCell<usize>,
}

// wasm32 without threads: one thread touches it.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap { free: UnsafeCell::new([0; CLASSES]), top: UnsafeCell::new(0) };

/// The size class of `layout`: log2 of the block size (at least 16 bytes).
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN {
        return None;
    }
    let size = layout.size().max(ALIGN);
    let c = (usize::BITS - (size - 1).leading_zeros()) as usize;
    (c < CLASSES).then_some(c)
}

unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else { return null_mut() };
        let Some(head) = (*self.free.get()).get_mut(c) else { return null_mut() };
        if *head != 0 {
            let block = *head;
            *head = *(block as *const usize);
            return block as *mut u8;
        }
        let top = &mut *self.top.get();
        if *top == 0 {
            // Above everything the module itself placed in memory (data, stack).
            *top = core::arch::wasm32::memory_size(0) * PAGE;
        }
        let block = *top;
        let Some(end) = block.checked_add(1 << c) else { return null_mut() };
        let have = core::arch::wasm32::memory_size(0) * PAGE;
        if end > have && core::arch::wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) == usize::MAX {
            return null_mut();
        }
        *top = end;
        block as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(head) = class(layout).and_then(|c| (*self.free.get()).get_mut(c)) {
            *(ptr as *mut usize) = *head;
            *head = ptr as usize;
        }
    }

    /// Within its class a block already has room: nothing to move.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        if class(layout) == class(new) {
            return ptr;
        }
        let p = self.alloc(new);
        if !p.is_null() {
            core::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        p
    }
}
