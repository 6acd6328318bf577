// The engine's int8 matrix-vector products, shared by `int8_linear` and the fused decode layer.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

// Compiled for AVX2 + FMA whatever the build flags; native.py loads the library only on such CPUs.
#define IMAGESENSE_AVX2 __attribute__((target("avx2,fma")))

namespace imagesense {

constexpr int64_t kBlockRows = 4;  // output channels per packed block
constexpr int64_t kStep = 16;      // inputs per instruction (16 int16 lanes)

// Rows of activations rounded to 14-bit integers, one step (scale) per row.
struct QuantizedRows {
  std::vector<int16_t> values;  // [rows][width]
  std::vector<float> steps;     // [rows]
  int64_t rows = 0, width = 0;
  QuantizedRows(const float* x, int64_t rows, int64_t width);
};

// One packed weight matrix ([N/4][K/16][4][16] int8, a scale per output channel) and where its
// output goes ([rows][N] float).
struct PackedMatrix {
  const int8_t* packed;
  const float* scale;
  int64_t out_features;
  float* out;
};

// out[m][n] = scale[n] · step[m] · Σ_k x[m][k] · w[n][k] for every matrix (all as wide as x), in one
// parallel region: q/k/v (or gate/up) share a single pass over the threads.
void multiply_many(const QuantizedRows& x, const std::vector<PackedMatrix>& matrices);

void check_packed(const at::Tensor& packed, int64_t K);

}  // namespace imagesense
