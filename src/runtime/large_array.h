// Storage for the arrays of hundreds of megabytes the analysis keeps (its activation caches).
//
// std::vector<T> with the standard allocator zeroes every element on resize, and the kernel then
// maps the memory in 4 KB pages, one fault each. Both are wasted on an array that is about to be
// overwritten: building the 2.3 GB FP32 cache of ResNet-8 spent about 70% of its 9 s in that
// memset and its page faults (perf, on a VM where a fault is costly). LargeArray<T> leaves the
// elements uninitialised on resize and asks for transparent huge pages (2 MB: 512 times fewer
// faults) for blocks of 2 MB and more. Only for trivially copyable element types whose every
// element is written before it is read.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace qplay {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

template <typename T>
struct UninitializedAllocator {
  static_assert(std::is_trivially_copyable_v<T>, "UninitializedAllocator leaves elements unconstructed");
  using value_type = T;

  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) {}

  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return static_cast<T*>(::operator new(bytes));
    // Whole huge pages, aligned, so the kernel can back every one of them with a 2 MB page.
    const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* p = std::aligned_alloc(kHugePageBytes, rounded);
    if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the array works in 4 KB pages
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePageBytes)
      ::operator delete(p);
    else
      std::free(p);
  }

  // resize() default-initialises: no zeroing. Copies and moves construct as usual.
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  template <typename U>
  bool operator==(const UninitializedAllocator<U>&) const {
    return true;
  }
};

template <typename T>
using LargeArray = std::vector<T, UninitializedAllocator<T>>;

}  // namespace qplay
