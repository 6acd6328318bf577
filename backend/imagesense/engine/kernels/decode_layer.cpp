// One decode step (one token) through a Qwen3 decoder layer whose seven projections are the engine's
// packed int8 matrices, in one call: RMSNorm, q/k/v in one parallel pass, per-head q/k norms, rotary
// embedding, the new key and value written into the cache's buffers, grouped-query attention over the
// cache, o_proj, RMSNorm, gate/up in one pass, SiLU, down_proj, both residuals.
//
// Run from Python, the same step is ~20 small PyTorch ops a layer (560 a token on 2B), each paying
// dispatch and allocation: 15-25 ms of a ~150 ms token on 2 cores (lean_decode.py has the figures).
// Here the small work is plain loops on one token's vectors and the matrices run on the int8 kernel
// without a trip through the dispatcher.
#include "int8_matvec.h"

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

namespace imagesense {
namespace {

IMAGESENSE_AVX2 float dot(const float* a, const float* b, int64_t n) {
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) sum = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), sum);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (float lane : lanes) total += lane;
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// out += weight · x
IMAGESENSE_AVX2 void add_scaled(float* out, const float* x, float weight, int64_t n) {
  const __m256 w = _mm256_set1_ps(weight);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), _mm256_loadu_ps(out + i)));
  }
  for (; i < n; ++i) out[i] += weight * x[i];
}

// Qwen3's RMSNorm: x / sqrt(mean(x²) + eps) · weight, in float32.
void rms_norm(const float* x, const float* weight, int64_t n, double eps, float* out) {
  double squares = 0.0;
  for (int64_t i = 0; i < n; ++i) squares += static_cast<double>(x[i]) * x[i];
  const float inverse = static_cast<float>(1.0 / std::sqrt(squares / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inverse);
}

// Per-head norm, then rotary embedding (rotate_half's convention: the two halves of a head pair up).
void norm_and_rotate(float* heads, int64_t count, int64_t dim, const float* norm, double eps, const float* cos,
                     const float* sin) {
  std::vector<float> normed(dim);
  const int64_t half = dim / 2;
  for (int64_t h = 0; h < count; ++h) {
    float* head = heads + h * dim;
    rms_norm(head, norm, dim, eps, normed.data());
    for (int64_t d = 0; d < half; ++d) {
      head[d] = normed[d] * cos[d] - normed[d + half] * sin[d];
      head[d + half] = normed[d + half] * cos[d + half] + normed[d] * sin[d + half];
    }
  }
}

// softmax(q·Kᵀ·scaling)·V for every query head over positions [0, length). Query heads share key/value
// heads in consecutive groups (grouped-query): a group is computed together, so each cached key and value
// is read once. Keys and values: [kv_heads][capacity][dim].
void attend(const float* queries, int64_t heads, const float* keys, const float* values, int64_t kv_heads,
            int64_t capacity, int64_t length, int64_t dim, float scaling, float* out) {
  const int64_t group = heads / kv_heads;
  at::parallel_for(0, kv_heads, 1, [&](int64_t first, int64_t last) {
    std::vector<float> scores(group * length);
    for (int64_t g = first; g < last; ++g) {
      const float* head_keys = keys + g * capacity * dim;
      const float* head_values = values + g * capacity * dim;
      for (int64_t t = 0; t < length; ++t) {
        for (int64_t j = 0; j < group; ++j) {
          scores[j * length + t] = dot(queries + (g * group + j) * dim, head_keys + t * dim, dim) * scaling;
        }
      }
      for (int64_t j = 0; j < group; ++j) {
        float* row = scores.data() + j * length;
        const float peak = *std::max_element(row, row + length);
        float total = 0.0f;
        for (int64_t t = 0; t < length; ++t) total += row[t] = std::exp(row[t] - peak);
        for (int64_t t = 0; t < length; ++t) row[t] /= total;
      }
      float* group_out = out + g * group * dim;
      std::fill(group_out, group_out + group * dim, 0.0f);
      for (int64_t t = 0; t < length; ++t) {
        for (int64_t j = 0; j < group; ++j) add_scaled(group_out + j * dim, head_values + t * dim, scores[j * length + t], dim);
      }
    }
  });
}

const float* floats(const at::Tensor& t, int64_t numel, const char* what) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == numel, what,
              " must be a contiguous float32 tensor of ", numel, " elements");
  return t.data_ptr<float>();
}

PackedMatrix matrix(const at::Tensor& packed, const at::Tensor& scale, int64_t in_features, float* out) {
  check_packed(packed, in_features);
  const int64_t out_features = packed.size(0) * kBlockRows;
  return {packed.data_ptr<int8_t>(), floats(scale, out_features, "a scale"), out_features, out};
}

// norms: input, q, k, post-attention. packed / scales: q, k, v, o, gate, up, down. The new key and
// value go to position `position` of the rooms ([1, kv_heads, capacity, head_dim]); attention covers
// positions [0, position].
at::Tensor decode_layer(const at::Tensor& hidden, const at::Tensor& cos, const at::Tensor& sin,
                        const at::Tensor& key_room, const at::Tensor& value_room, int64_t position,
                        at::TensorList norms, at::TensorList packed, at::TensorList scales, double eps,
                        double scaling) {
  TORCH_CHECK(norms.size() == 4 && packed.size() == 7 && scales.size() == 7, "decode_layer: 4 norms, 7 matrices");
  TORCH_CHECK(key_room.dim() == 4 && key_room.size(0) == 1 && key_room.sizes() == value_room.sizes(),
              "the cache's rooms must be [1, kv_heads, capacity, head_dim]");
  const int64_t width = hidden.numel(), kv_heads = key_room.size(1), capacity = key_room.size(2);
  const int64_t dim = key_room.size(3), heads = packed[0].size(0) * kBlockRows / dim;
  const int64_t inner = packed[4].size(0) * kBlockRows;
  TORCH_CHECK(position >= 0 && position < capacity, "no room in the cache for the new token");
  TORCH_CHECK(heads % kv_heads == 0 && packed[1].size(0) * kBlockRows == kv_heads * dim, "head counts differ");
  float* keys = const_cast<float*>(floats(key_room, key_room.numel(), "the key room"));
  float* values = const_cast<float*>(floats(value_room, value_room.numel(), "the value room"));
  const float* rope_cos = floats(cos, dim, "cos");
  const float* rope_sin = floats(sin, dim, "sin");
  auto out = hidden.to(at::kFloat).contiguous().clone();
  float* state = out.data_ptr<float>();

  std::vector<float> x(width), q(heads * dim), k(kv_heads * dim), v(kv_heads * dim), attended(heads * dim);
  rms_norm(state, floats(norms[0], width, "a norm"), width, eps, x.data());
  multiply_many(QuantizedRows(x.data(), 1, width), {matrix(packed[0], scales[0], width, q.data()),
                                                     matrix(packed[1], scales[1], width, k.data()),
                                                     matrix(packed[2], scales[2], width, v.data())});
  norm_and_rotate(q.data(), heads, dim, floats(norms[1], dim, "q_norm"), eps, rope_cos, rope_sin);
  norm_and_rotate(k.data(), kv_heads, dim, floats(norms[2], dim, "k_norm"), eps, rope_cos, rope_sin);
  for (int64_t g = 0; g < kv_heads; ++g) {
    std::copy_n(k.data() + g * dim, dim, keys + (g * capacity + position) * dim);
    std::copy_n(v.data() + g * dim, dim, values + (g * capacity + position) * dim);
  }
  attend(q.data(), heads, keys, values, kv_heads, capacity, position + 1, dim, static_cast<float>(scaling),
         attended.data());
  std::vector<float> projected(width);
  multiply_many(QuantizedRows(attended.data(), 1, heads * dim), {matrix(packed[3], scales[3], heads * dim, projected.data())});
  for (int64_t i = 0; i < width; ++i) state[i] += projected[i];

  std::vector<float> gate(inner), up(inner);
  rms_norm(state, floats(norms[3], width, "a norm"), width, eps, x.data());
  multiply_many(QuantizedRows(x.data(), 1, width), {matrix(packed[4], scales[4], width, gate.data()),
                                                     matrix(packed[5], scales[5], width, up.data())});
  for (int64_t i = 0; i < inner; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  multiply_many(QuantizedRows(gate.data(), 1, inner), {matrix(packed[6], scales[6], inner, projected.data())});
  for (int64_t i = 0; i < width; ++i) state[i] += projected[i];
  return out;
}

}  // namespace
}  // namespace imagesense

TORCH_LIBRARY_FRAGMENT(imagesense, m) {
  m.def(
      "decode_layer(Tensor hidden, Tensor cos, Tensor sin, Tensor(a!) key_room, Tensor(b!) value_room, "
      "int position, Tensor[] norms, Tensor[] packed, Tensor[] scales, float eps, float scaling) -> Tensor");
}

TORCH_LIBRARY_IMPL(imagesense, CPU, m) { m.impl("decode_layer", imagesense::decode_layer); }
