// Torch tensors -> the raw views of factors.h (shared by factors_cpu.cpp and factors_cuda.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

#include "factors.h"

namespace tensorfields {

// planes: 3 x [R_i, H_i, W_i]; lines: 3 x [R_i, L_i] (checked in ext.cpp).
template <typename scalar_t>
VMFactorsView<scalar_t> vm_view(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines) {
  VMFactorsView<scalar_t> f;
  f.first[0] = 0;
  for (int i = 0; i < 3; ++i) {
    f.planes[i] = planes[i].data_ptr<scalar_t>();
    f.lines[i] = lines[i].data_ptr<scalar_t>();
    f.height[i] = static_cast<int32_t>(planes[i].size(1));
    f.width[i] = static_cast<int32_t>(planes[i].size(2));
    f.length[i] = static_cast<int32_t>(lines[i].size(1));
    f.first[i + 1] = f.first[i] + planes[i].size(0);
  }
  return f;
}

// lines: 3 x [R, L_a] (checked in ext.cpp).
template <typename scalar_t>
CPFactorsView<scalar_t> cp_view(const std::vector<at::Tensor>& lines) {
  CPFactorsView<scalar_t> f;
  for (int a = 0; a < 3; ++a) {
    f.lines[a] = lines[a].data_ptr<scalar_t>();
    f.length[a] = static_cast<int32_t>(lines[a].size(1));
  }
  f.components = lines[0].size(0);
  return f;
}

template <typename scalar_t>
FactorGrads<scalar_t> grads_view(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines) {
  FactorGrads<scalar_t> g{};
  for (size_t i = 0; i < planes.size(); ++i) g.planes[i] = planes[i].data_ptr<scalar_t>();
  for (size_t i = 0; i < lines.size(); ++i) g.lines[i] = lines[i].data_ptr<scalar_t>();
  return g;
}

inline std::vector<at::Tensor> empty_like_each(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : tensors) out.push_back(at::empty_like(t));
  return out;
}

inline std::vector<at::Tensor> zeros_like_each(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : tensors) out.push_back(at::zeros_like(t));
  return out;
}

}  // namespace tensorfields
