#include "ring/internal/buffer_ring.h"

#include "base/assert.h"
#include "ring/internal/system.h"
#include "ring/reactor.h"

#include <liburing.h>

#include <cerrno>
#include <sys/mman.h>

namespace ringscan::ring::internal {

buffer_ring::~buffer_ring() {
    if (ring_ != nullptr) {
        ::munmap(ring_, ring_bytes_);
    }
    if (buffers_ != nullptr) {
        ::munmap(buffers_, buffer_bytes_);
    }
}

void buffer_ring::setup(io_uring& ring, unsigned count, unsigned size) {
    RINGSCAN_ASSERT(count > 0 && (count & (count - 1)) == 0);
    count_ = count;
    size_ = size;
    ring_bytes_ = count * sizeof(io_uring_buf);
    void* ring_memory =
        ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring_memory == MAP_FAILED) {
        throw setup_error("mmap for the provided-buffer ring: " + errno_text(errno));
    }
    ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
    buffer_bytes_ = std::size_t{count} * size;
    void* data =
        ::mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
        throw setup_error("mmap for receive buffers: " + errno_text(errno));
    }
    buffers_ = static_cast<std::byte*>(data);
    ::io_uring_buf_ring_init(ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
    reg.ring_entries = count;
    reg.bgid = group_id;
    const int rc = ::io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0) {
        throw setup_error("io_uring_register_buf_ring: " + errno_text(-rc) +
                          " (provided buffer rings need Linux 5.19+)");
    }
    const int mask = ::io_uring_buf_ring_mask(count);
    for (unsigned bid = 0; bid < count; ++bid) {
        ::io_uring_buf_ring_add(ring_, address(bid), size, static_cast<unsigned short>(bid), mask,
                                static_cast<int>(bid));
    }
    ::io_uring_buf_ring_advance(ring_, static_cast<int>(count));
}

void buffer_ring::unregister(io_uring& ring) noexcept {
    if (ring_ != nullptr) {
        ::io_uring_unregister_buf_ring(&ring, group_id);
    }
}

void buffer_ring::recycle(unsigned bid) noexcept {
    ::io_uring_buf_ring_add(ring_, address(bid), size_, static_cast<unsigned short>(bid),
                            ::io_uring_buf_ring_mask(count_), 0);
    ::io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace ringscan::ring::internal
