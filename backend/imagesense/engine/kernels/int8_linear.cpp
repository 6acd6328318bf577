// Weight-only int8 matrix-vector products for decode on x86 CPUs with AVX2.
//
// PyTorch's `_weight_int8pack_mm` widens every int8 weight to float and multiplies in float: on AVX2 it
// is bound by those conversions (~12 GB/s of weights on 2 cores), not by memory. Here the activations
// of each row are quantized to 14-bit integers (one scale per row; the error, ~1e-4 relative, is far
// below the int8 weights' own ~1 % and below bfloat16 activations' ~0.3 %), and the products run on
// integers: `vpmovsxbw` + `vpmaddwd` do 16 multiply-adds in two instructions. Weights are packed in
// blocks of 4 output channels interleaved every 16 inputs ([N/4][K/16][4][16]), so a block is one
// sequential stream. Sums are exact in int32 over 16384 inputs (2 · 8191 · 127 per lane and step).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kBlockRows = 4;   // output channels per packed block
constexpr int64_t kStep = 16;       // inputs per instruction (16 int16 lanes)
constexpr int64_t kSlab = 16384;    // inputs summed in int32 before a flush to int64
constexpr float kActMax = 8191.0f;  // 14-bit activations

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 inline __m256i multiply_add(const int8_t* weights, __m256i activations) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(weights));
  return _mm256_madd_epi16(_mm256_cvtepi8_epi16(bytes), activations);
}

AVX2 inline int32_t horizontal_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Two blocks at once, far apart in memory: two streams per thread keep more lines in flight.
AVX2 void block_dot2(const int16_t* x, const int8_t* first, const int8_t* second, int64_t k0, int64_t k1,
                     int64_t* sums_first, int64_t* sums_second) {
  __m256i a[kBlockRows], b[kBlockRows];
  for (int r = 0; r < kBlockRows; ++r) a[r] = b[r] = _mm256_setzero_si256();
  for (int64_t k = k0; k < k1; k += kStep) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
    const int8_t* line_a = first + k * kBlockRows;
    const int8_t* line_b = second + k * kBlockRows;
#pragma GCC unroll 4
    for (int r = 0; r < kBlockRows; ++r) {
      a[r] = _mm256_add_epi32(a[r], multiply_add(line_a + r * kStep, xv));
      b[r] = _mm256_add_epi32(b[r], multiply_add(line_b + r * kStep, xv));
    }
  }
  for (int r = 0; r < kBlockRows; ++r) {
    sums_first[r] += horizontal_sum(a[r]);
    sums_second[r] += horizontal_sum(b[r]);
  }
}

float quantize_row(const float* x, int64_t K, int16_t* q) {
  float peak = 0.0f;
  for (int64_t k = 0; k < K; ++k) peak = std::max(peak, std::fabs(x[k]));
  const float step = peak > 0.0f && std::isfinite(peak) ? peak / kActMax : 1.0f;
  const float inverse = 1.0f / step;
  for (int64_t k = 0; k < K; ++k) q[k] = static_cast<int16_t>(std::nearbyint(x[k] * inverse));
  return step;
}

void check_packed(const at::Tensor& packed, int64_t K) {
  TORCH_CHECK(packed.scalar_type() == at::kChar && packed.is_contiguous(), "packed weights must be contiguous int8");
  TORCH_CHECK(packed.dim() == 4 && packed.size(2) == kBlockRows && packed.size(3) == kStep,
              "packed weights must have the shape [N/4, K/16, 4, 16]");
  TORCH_CHECK(packed.size(1) * kStep == K, "the activations' width differs from the weights'");
}

// [N, K] int8 → [N/4, K/16, 4, 16]; N a multiple of 4, K a multiple of 16.
at::Tensor pack_int8(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kChar, "pack_int8 takes a 2-D int8 matrix");
  const int64_t N = weight.size(0), K = weight.size(1);
  TORCH_CHECK(N % kBlockRows == 0 && K % kStep == 0, "pack_int8: N must be a multiple of 4 and K of 16");
  return weight.reshape({N / kBlockRows, kBlockRows, K / kStep, kStep}).permute({0, 2, 1, 3}).contiguous();
}

// y[m, n] = scale[n] · Σ_k x[m, k] · w[n, k], in float32, for a few rows m (decode).
at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scale) {
  TORCH_CHECK(x.dim() == 2, "int8_linear takes 2-D activations");
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0) * kBlockRows;
  check_packed(packed, K);
  TORCH_CHECK(scale.numel() == N, "one scale per output channel");
  const auto xf = x.to(at::kFloat).contiguous();
  const auto sf = scale.to(at::kFloat).contiguous();
  auto xq = at::empty({M, K}, xf.options().dtype(at::kShort));
  std::vector<float> steps(M);
  for (int64_t m = 0; m < M; ++m) {
    steps[m] = quantize_row(xf.data_ptr<float>() + m * K, K, xq.data_ptr<int16_t>() + m * K);
  }
  auto out = at::empty({M, N}, xf.options());
  const int16_t* xp = xq.data_ptr<int16_t>();
  const int8_t* wp = packed.data_ptr<int8_t>();
  const float* sp = sf.data_ptr<float>();
  float* op = out.data_ptr<float>();
  auto finish = [&](int64_t b, int64_t m, const int64_t* sums) {
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const int64_t n = b * kBlockRows + r;
      op[m * N + n] = static_cast<float>(sums[r]) * steps[m] * sp[n];
    }
  };
  // Blocks b1 and b2 for every row; the odd block a thread has left over goes as b1 == b2 (read twice
  // from cache, written once).
  auto dot_blocks = [&](int64_t b1, int64_t b2) {
    for (int64_t m = 0; m < M; ++m) {
      int64_t s1[kBlockRows] = {0, 0, 0, 0}, s2[kBlockRows] = {0, 0, 0, 0};
      for (int64_t k0 = 0; k0 < K; k0 += kSlab) {
        const int64_t k1 = std::min(K, k0 + kSlab);
        block_dot2(xp + m * K, wp + b1 * kBlockRows * K, wp + b2 * kBlockRows * K, k0, k1, s1, s2);
      }
      finish(b1, m, s1);
      if (b2 != b1) finish(b2, m, s2);
    }
  };
  // Each thread reads the first and second halves of its blocks side by side: two streams keep more
  // memory reads in flight than one (~15 GB/s instead of ~12.5 on 2 cores, measured).
  at::parallel_for(0, N / kBlockRows, 16, [&](int64_t first, int64_t last) {
    const int64_t half = (last - first) / 2;
    for (int64_t i = 0; i < half; ++i) dot_blocks(first + i, first + half + i);
    if ((last - first) % 2) dot_blocks(last - 1, last - 1);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(imagesense, m) {
  m.def("pack_int8(Tensor weight) -> Tensor");
  m.def("int8_linear(Tensor x, Tensor packed, Tensor scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(imagesense, CPU, m) {
  m.impl("pack_int8", pack_int8);
  m.impl("int8_linear", int8_linear);
}
