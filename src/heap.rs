//! The wasm module's allocator: power-of-two size classes, each with a free
//! list, carved from memory the module grows. A few hundred bytes instead of
//! dlmalloc's 7 kB; memory use stays flat because a freed block is reused by
//! the next allocation of its class (the keeper's working set is small and
//! steady: a handful of tokens, settings and queued commands). Freed memory
//! is not given back to the browser, which wasm memory cannot do anyway.
//!
//! wasm32 runs the module on one thread: the state needs no lock.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Size classes 2^0 .. 2^31 bytes (wasm32 memory ends at 4 GiB).
const CLASSES: usize = 32;
/// The smallest block: room for the free list's link.
const MIN_CLASS: u32 = 3;
/// Blocks are aligned to their size, up to this (larger alignments: none here).
const MAX_ALIGN: usize = 4096;
const PAGE: usize = 65536;

struct State {
    free: [*mut u8; CLASSES],
    /// The untouched memory left: `next .. end`.
    next: usize,
    end: usize,
}

/// The allocator (`#[global_allocator]` in lib.rs).
pub(crate) struct Heap(UnsafeCell<State>);

// SAFETY: wasm32-unknown-unknown runs the module on a single thread.
unsafe impl Sync for Heap {}

impl Heap {
    pub(crate) const fn new() -> Heap {
        Heap(UnsafeCell::new(State {
            free: [ptr::null_mut(); CLASSES],
            next: 0,
            end: 0,
        }))
    }
}

/// The class of a layout: log2 of its block size, or `None` if too large.
fn class(layout: &Layout) -> Option<usize> {
    if layout.align() > MAX_ALIGN {
        return None;
    }
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS);
    let class = size.checked_next_power_of_two()?.trailing_zeros() as usize;
    (class < CLASSES).then_some(class)
}

impl State {
    /// A fresh block of `1 << class` bytes from the end of memory.
    fn carve(&mut self, class: usize) -> *mut u8 {
        let size = 1usize << class;
        let align = size.min(MAX_ALIGN);
        loop {
            let start = self.next.checked_add(align - 1).map(|s| s & !(align - 1));
            if let Some((start, stop)) = start.and_then(|s| Some((s, s.checked_add(size)?))) {
                if stop <= self.end {
                    self.next = stop;
                    return start as *mut u8;
                }
            }
            // Grow by what the block needs (and at least 256 KiB at a time).
            let pages = (size + align).div_ceil(PAGE).max(4);
            let before = core::arch::wasm32::memory_grow(0, pages);
            if before == usize::MAX {
                return ptr::null_mut();
            }
            let base = before * PAGE;
            if base != self.end {
                // First use (or memory grown elsewhere): start at the new pages.
                self.next = base;
            }
            self.end = base.saturating_add(pages * PAGE);
        }
    }
}

unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(&layout) else {
            return ptr::null_mut();
        };
        // SAFETY: single-threaded, and no reference to the state outlives this call.
        let state = unsafe { &mut *self.0.get() };
        let Some(head) = state.free.get_mut(class) else {
            return ptr::null_mut();
        };
        if head.is_null() {
            return state.carve(class);
        }
        let block = *head;
        // SAFETY: a free block's first word holds the next free block of its class.
        *head = unsafe { *(block as *mut *mut u8) };
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(&layout) else { return };
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        if let Some(head) = state.free.get_mut(class) {
            // SAFETY: the block is ours, at least 8 bytes and aligned for a pointer.
            unsafe { *(block as *mut *mut u8) = *head };
            *head = block;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's layout rules, passed on.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if class(&layout) == class(&new) {
            return block;
        }
        // SAFETY: as GlobalAlloc::realloc requires.
        let fresh = unsafe { self.alloc(new) };
        if !fresh.is_null() {
            // SAFETY: both blocks are at least this long and do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(block, fresh, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn classes_are_powers_of_two_aligned_to_their_size() {
        let layout = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class(&layout(0, 1)), Some(3));
        assert_eq!(class(&layout(8, 8)), Some(3));
        assert_eq!(class(&layout(9, 1)), Some(4));
        assert_eq!(class(&layout(1, 64)), Some(6));
        assert_eq!(class(&layout((1 << 30) + 1, 1)), Some(31));
        assert_eq!(class(&layout(1, 8192)), None);
        let heap = Heap::new();
        for size in [1usize, 8, 24, 100, 4096, 70_000] {
            let l = layout(size, 8);
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            let block = 1usize << class(&l).unwrap();
            assert_eq!(
                p as usize % block.min(MAX_ALIGN),
                0,
                "{size} bytes at {p:?}"
            );
            unsafe { heap.dealloc(p, l) };
        }
    }

    #[wasm_bindgen_test]
    fn freed_blocks_are_reused_and_contents_survive_realloc() {
        let heap = Heap::new();
        let l = Layout::from_size_align(40, 8).unwrap();
        let a = unsafe { heap.alloc(l) };
        let b = unsafe { heap.alloc(l) };
        assert_ne!(a, b);
        unsafe { heap.dealloc(a, l) };
        assert_eq!(
            unsafe { heap.alloc(l) },
            a,
            "the freed block comes back first"
        );
        unsafe {
            for i in 0..40 {
                *a.add(i) = i as u8;
            }
            // Same class: the block stays; a larger class: moved, contents kept.
            assert_eq!(heap.realloc(a, l, 60), a);
            let moved = heap.realloc(a, Layout::from_size_align(60, 8).unwrap(), 500);
            assert_ne!(moved, a);
            for i in 0..40 {
                assert_eq!(*moved.add(i), i as u8);
            }
        }
    }

    #[wasm_bindgen_test]
    fn memory_stays_flat_under_steady_churn() {
        let mut v: Vec<Vec<u8>> = Vec::new();
        for round in 0..200 {
            v.clear();
            for i in 0..50usize {
                v.push(alloc::vec![round as u8; 1 + i * 37]);
            }
        }
        let before = core::arch::wasm32::memory_size(0);
        for round in 0..2000 {
            v.clear();
            for i in 0..50usize {
                v.push(alloc::vec![round as u8; 1 + i * 37]);
            }
        }
        assert_eq!(core::arch::wasm32::memory_size(0), before);
    }
}
