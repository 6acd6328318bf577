// Weight-only int8 matrix-vector products for decode on x86 CPUs with AVX2.
//
// PyTorch's `_weight_int8pack_mm` widens every int8 weight to float and multiplies in float: on AVX2 it
// is bound by those conversions (~12 GB/s of weights on 2 cores), not by memory. Here the activations
// of each row are quantized to 14-bit integers (one scale per row; the error, ~1e-4 relative, is far
// below the int8 weights' own ~1 % and below bfloat16 activations' ~0.3 %), and the products run on
// integers: `vpmovsxbw` + `vpmaddwd` do 16 multiply-adds in two instructions. Weights are packed in
// blocks of 4 output channels interleaved every 16 inputs ([N/4][K/16][4][16]), so a block is one
// sequential stream. Sums are exact in int32 over 16384 inputs (2 · 8191 · 127 per lane and step).
#include "int8_matvec.h"

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

namespace imagesense {
namespace {

constexpr int64_t kSlab = 16384;    // inputs summed in int32 before a flush to int64
constexpr float kActMax = 8191.0f;  // 14-bit activations

IMAGESENSE_AVX2 inline __m256i multiply_add(const int8_t* weights, __m256i activations) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(weights));
  return _mm256_madd_epi16(_mm256_cvtepi8_epi16(bytes), activations);
}

IMAGESENSE_AVX2 inline int32_t horizontal_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Four blocks at once, far apart in memory: four streams per thread, each prefetched ~1 KB ahead (16
// steps), keep enough lines in flight for the two threads to approach the machine's bandwidth; two streams
// without prefetch read ~1.2x slower (2B's decode matrices, 2 cores: 15.5-19.0 vs 18.6-23.9 GB/s,
// round by round).
constexpr int kStreams = 4;
constexpr int64_t kPrefetchBytes = 1024;

IMAGESENSE_AVX2 void block_dot(const int16_t* x, const int8_t* const* blocks, int64_t k0, int64_t k1,
                               int64_t (*sums)[kBlockRows]) {
  __m256i acc[kStreams][kBlockRows];
  for (auto& stream : acc)
    for (auto& lane : stream) lane = _mm256_setzero_si256();
  for (int64_t k = k0; k < k1; k += kStep) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s) {
      const int8_t* line = blocks[s] + k * kBlockRows;
      _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchBytes), _MM_HINT_T0);
#pragma GCC unroll 4
      for (int r = 0; r < kBlockRows; ++r) acc[s][r] = _mm256_add_epi32(acc[s][r], multiply_add(line + r * kStep, xv));
    }
  }
  for (int s = 0; s < kStreams; ++s)
    for (int r = 0; r < kBlockRows; ++r) sums[s][r] += horizontal_sum(acc[s][r]);
}

// A block of one of several matrices, by its index in all their blocks laid end to end.
struct BlockRef {
  const PackedMatrix* matrix;
  int64_t block;
};

BlockRef find_block(const std::vector<PackedMatrix>& matrices, int64_t index) {
  for (const auto& matrix : matrices) {
    const int64_t blocks = matrix.out_features / kBlockRows;
    if (index < blocks) return {&matrix, index};
    index -= blocks;
  }
  TORCH_CHECK(false, "block index out of range");
}

}  // namespace

QuantizedRows::QuantizedRows(const float* x, int64_t rows, int64_t width)
    : values(rows * width), steps(rows), rows(rows), width(width) {
  for (int64_t m = 0; m < rows; ++m) {
    const float* row = x + m * width;
    float peak = 0.0f;
    for (int64_t k = 0; k < width; ++k) peak = std::max(peak, std::fabs(row[k]));
    const float step = peak > 0.0f && std::isfinite(peak) ? peak / kActMax : 1.0f;
    const float inverse = 1.0f / step;
    for (int64_t k = 0; k < width; ++k) values[m * width + k] = static_cast<int16_t>(std::nearbyint(row[k] * inverse));
    steps[m] = step;
  }
}

void multiply_many(const QuantizedRows& x, const std::vector<PackedMatrix>& matrices) {
  const int64_t K = x.width;
  int64_t total = 0;
  for (const auto& matrix : matrices) total += matrix.out_features / kBlockRows;
  auto finish = [&](const BlockRef& ref, int64_t m, const int64_t* sums) {
    const PackedMatrix& mat = *ref.matrix;
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const int64_t n = ref.block * kBlockRows + r;
      mat.out[m * mat.out_features + n] = static_cast<float>(sums[r]) * x.steps[m] * mat.scale[n];
    }
  };
  // Blocks index[0..3] for every row; a thread's left-over blocks go in a group that repeats its last
  // one (read again from cache, written once).
  auto dot_blocks = [&](const int64_t* index, int distinct) {
    BlockRef refs[kStreams];
    const int8_t* blocks[kStreams];
    for (int s = 0; s < kStreams; ++s) {
      refs[s] = find_block(matrices, index[s]);
      blocks[s] = refs[s].matrix->packed + refs[s].block * kBlockRows * K;
    }
    for (int64_t m = 0; m < x.rows; ++m) {
      int64_t sums[kStreams][kBlockRows] = {};
      for (int64_t k0 = 0; k0 < K; k0 += kSlab) {
        block_dot(x.values.data() + m * K, blocks, k0, std::min(K, k0 + kSlab), sums);
      }
      for (int s = 0; s < distinct; ++s) finish(refs[s], m, sums[s]);
    }
  };
  // Each thread reads the four quarters of its blocks side by side.
  at::parallel_for(0, total, 16, [&](int64_t first, int64_t last) {
    const int64_t quarter = (last - first) / kStreams;
    for (int64_t i = 0; i < quarter; ++i) {
      int64_t index[kStreams];
      for (int s = 0; s < kStreams; ++s) index[s] = first + s * quarter + i;
      dot_blocks(index, kStreams);
    }
    const int64_t rest = first + kStreams * quarter;
    if (rest < last) {
      int64_t index[kStreams];
      for (int s = 0; s < kStreams; ++s) index[s] = std::min(rest + s, last - 1);
      dot_blocks(index, static_cast<int>(last - rest));
    }
  });
}

void check_packed(const at::Tensor& packed, int64_t K) {
  TORCH_CHECK(packed.scalar_type() == at::kChar && packed.is_contiguous(), "packed weights must be contiguous int8");
  TORCH_CHECK(packed.dim() == 4 && packed.size(2) == kBlockRows && packed.size(3) == kStep,
              "packed weights must have the shape [N/4, K/16, 4, 16]");
  TORCH_CHECK(packed.size(1) * kStep == K, "the activations' width differs from the weights'");
}

namespace {

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
  auto out = at::empty({M, N}, xf.options());
  const QuantizedRows rows(xf.data_ptr<float>(), M, K);
  multiply_many(rows, {PackedMatrix{packed.data_ptr<int8_t>(), sf.data_ptr<float>(), N, out.data_ptr<float>()}});
  return out;
}

}  // namespace
}  // namespace imagesense

TORCH_LIBRARY(imagesense, m) {
  m.def("pack_int8(Tensor weight) -> Tensor");
  m.def("int8_linear(Tensor x, Tensor packed, Tensor scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(imagesense, CPU, m) {
  m.impl("pack_int8", imagesense::pack_int8);
  m.impl("int8_linear", imagesense::int8_linear);
}
