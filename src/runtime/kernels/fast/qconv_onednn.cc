#include "runtime/kernels/fast/qconv_onednn.h"

#include <atomic>

#include "runtime/cpu_features.h"

#if QPLAY_HAS_ONEDNN
#include <immintrin.h>
#include <omp.h>

#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>
#endif

namespace qplay::fast {

namespace {
std::atomic<bool> enabled{true};
}  // namespace

void set_onednn_qconv_enabled(bool on) { enabled = on; }

#if QPLAY_HAS_ONEDNN

bool onednn_qconv_available() { return has_avx512_vnni(); }

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Channels c0..c0+15 of 16 consecutive pixels (rows `channel_stride` apart) to 16 pixels of 16
// channels each (`pixel_stride` apart); only the first `pixels` (8 or 16) are read and written.
__attribute__((target("avx2"))) void transpose_16_channels(const uint8_t* src, int64_t channel_stride, int pixels,
                                                           uint8_t* dst, int64_t pixel_stride) {
  __m128i r[16];
  for (int i = 0; i < 16; ++i)
    r[i] = pixels == 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * channel_stride))
                        : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i * channel_stride));
  __m128i t[16], u[16], v[8], w[8];
  for (int i = 0; i < 8; ++i) {  // byte pairs of channels 2i, 2i+1: pixels 0-7, 8-15
    t[2 * i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 4; ++q) {  // channels 4q..4q+3 of pixels 0-3, 4-7, 8-11, 12-15
    u[4 * q + 0] = _mm_unpacklo_epi16(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm_unpackhi_epi16(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm_unpacklo_epi16(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm_unpackhi_epi16(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int k = 0; k < 4; ++k) {  // pixels 2j, 2j+1 (j = 2k, 2k+1) with channels 0-7 (v) and 8-15 (w)
    v[2 * k] = _mm_unpacklo_epi32(u[k], u[4 + k]);
    v[2 * k + 1] = _mm_unpackhi_epi32(u[k], u[4 + k]);
    w[2 * k] = _mm_unpacklo_epi32(u[8 + k], u[12 + k]);
    w[2 * k + 1] = _mm_unpackhi_epi32(u[8 + k], u[12 + k]);
  }
  for (int j = 0; 2 * j < pixels; ++j) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (2 * j) * pixel_stride), _mm_unpacklo_epi64(v[j], w[j]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (2 * j + 1) * pixel_stride), _mm_unpackhi_epi64(v[j], w[j]));
  }
}

// x [N][C][H][W] -> [N][H + pads][W + pads][C], the padding filled with `pad`.
void pad_to_nhwc(const OnednnConvInput& in, int64_t channels, uint8_t* out) {
  const int64_t hp = in.in_h + in.pad_top + in.pad_bottom, wp = in.in_w + in.pad_left + in.pad_right;
  const uint8_t pad = static_cast<uint8_t>(in.pad_code);
  const uint8_t* x = static_cast<const uint8_t*>(in.x);
  const int64_t plane = in.in_h * in.in_w, row_bytes = wp * channels;
  for (int64_t n = 0; n < in.batch; ++n) {  // the padding only: the copy below writes the rest
    uint8_t* image = out + n * hp * row_bytes;
    std::memset(image, pad, static_cast<size_t>(in.pad_top * row_bytes));
    std::memset(image + (in.pad_top + in.in_h) * row_bytes, pad, static_cast<size_t>(in.pad_bottom * row_bytes));
    for (int64_t y = in.pad_top; y < in.pad_top + in.in_h; ++y) {
      std::memset(image + y * row_bytes, pad, static_cast<size_t>(in.pad_left * channels));
      std::memset(image + y * row_bytes + (in.pad_left + in.in_w) * channels, pad,
                  static_cast<size_t>(in.pad_right * channels));
    }
  }
  for (int64_t n = 0; n < in.batch; ++n)
    for (int64_t y = 0; y < in.in_h; ++y) {
      uint8_t* row = out + ((n * hp + y + in.pad_top) * wp + in.pad_left) * channels;
      for (int64_t c0 = 0; c0 < channels; c0 += 16) {
        const uint8_t* src = x + (n * channels + c0) * plane + y * in.in_w;
        int64_t x0 = 0;
        for (; x0 + 16 <= in.in_w; x0 += 16)
          transpose_16_channels(src + x0, plane, 16, row + x0 * channels + c0, channels);
        for (; x0 + 8 <= in.in_w; x0 += 8)
          transpose_16_channels(src + x0, plane, 8, row + x0 * channels + c0, channels);
        for (; x0 < in.in_w; ++x0)
          for (int64_t c = 0; c < 16; ++c) row[x0 * channels + c0 + c] = src[c * plane + x0];
      }
    }
}

}  // namespace

struct OnednnConvSums::Impl {
  OnednnConvShape shape;
  std::vector<int8_t> weights;  // [M][C][kh][kw]

  // One primitive per input geometry (batch, size, strides, pads; the batch slices of a run are of two sizes).
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  struct Prepared {
    dnnl::convolution_forward conv;
    memory::desc src, dst;
    memory weights;  // reordered to the primitive's layout
    size_t scratchpad_bytes = 0;
  };
  std::mutex mutex;
  std::map<Key, std::shared_ptr<const Prepared>> prepared;

  std::shared_ptr<const Prepared> prepare(const OnednnConvInput& in) {
    const Key key{in.batch,   in.in_h,     in.in_w,       in.stride_h, in.stride_w,
                  in.pad_top, in.pad_left, in.pad_bottom, in.pad_right};
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = prepared.find(key); it != prepared.end()) return it->second;
    const OnednnConvShape& s = shape;
    const int64_t hp = in.in_h + in.pad_top + in.pad_bottom, wp = in.in_w + in.pad_left + in.pad_right;
    const memory::data_type x_type = s.x_signed ? memory::data_type::s8 : memory::data_type::u8;
    auto p = std::make_shared<Prepared>();
    p->src = memory::desc({in.batch, s.in_channels, hp, wp}, x_type, Tag::nhwc);
    p->dst = memory::desc({in.batch, s.out_channels, in.out_h, in.out_w}, memory::data_type::s32, Tag::nhwc);
    const memory::desc any_weights({s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, memory::data_type::s8,
                                   Tag::any);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                               p->src, any_weights, p->dst, {in.stride_h, in.stride_w}, {0, 0}, {0, 0});
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
    p->conv = dnnl::convolution_forward(pd);
    p->scratchpad_bytes = pd.scratchpad_desc().get_size();
    const memory::desc plain({s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, memory::data_type::s8, Tag::oihw);
    memory user(plain, cpu_engine(), weights.data());
    p->weights = memory(pd.weights_desc(), cpu_engine());
    dnnl::stream stream(cpu_engine());
    dnnl::reorder(user, p->weights).execute(stream, user, p->weights);
    stream.wait();
    prepared.emplace(key, p);
    return p;
  }
};

std::shared_ptr<const OnednnConvSums> OnednnConvSums::create(const OnednnConvShape& shape, const int8_t* weights) {
  if (!enabled || !onednn_qconv_available() || shape.in_channels % 16 != 0 || shape.out_channels % 16 != 0 ||
      shape.kernel_h < 1 || shape.kernel_w < 1)
    return nullptr;
  auto impl = std::make_shared<Impl>();
  impl->shape = shape;
  impl->weights.assign(weights, weights + shape.out_channels * shape.in_channels * shape.kernel_h * shape.kernel_w);
  return std::make_shared<const OnednnConvSums>(std::move(impl));
}

void OnednnConvSums::run(const OnednnConvInput& in, int32_t* sums) const {
  const std::shared_ptr<const Impl::Prepared> p = impl_->prepare(in);
  // oneDNN's OpenMP threads would compete with qplay's own (one batch per thread): one each.
  thread_local const bool one_thread = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)one_thread;
  thread_local std::vector<uint8_t> padded, scratchpad;
  padded.resize(p->src.get_size());
  scratchpad.resize(p->scratchpad_bytes);
  pad_to_nhwc(in, impl_->shape.in_channels, padded.data());
  thread_local dnnl::stream stream(cpu_engine());
  memory src(p->src, cpu_engine(), padded.data()), dst(p->dst, cpu_engine(), sums);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p->weights}, {DNNL_ARG_DST, dst}};
  if (p->scratchpad_bytes > 0)
    args[DNNL_ARG_SCRATCHPAD] =
        memory(memory::desc({static_cast<memory::dim>(p->scratchpad_bytes)}, memory::data_type::u8, Tag::x),
               cpu_engine(), scratchpad.data());
  p->conv.execute(stream, args);
  stream.wait();
}

#else  // built without oneDNN

bool onednn_qconv_available() { return false; }

struct OnednnConvSums::Impl {};

std::shared_ptr<const OnednnConvSums> OnednnConvSums::create(const OnednnConvShape&, const int8_t*) { return nullptr; }

void OnednnConvSums::run(const OnednnConvInput&, int32_t*) const {}

#endif

}  // namespace qplay::fast
