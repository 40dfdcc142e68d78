// Argument checks for the torch bindings (the Python layer validates first and says more).
#pragma once

#include <torch/extension.h>

#define CHECK_CONTIGUOUS(x) TORCH_CHECK((x).is_contiguous(), #x " must be contiguous")
#define CHECK_FLOAT(x) TORCH_CHECK((x).scalar_type() == at::kFloat, #x " must be float32")
#define CHECK_SAME_DEVICE(x, y) TORCH_CHECK((x).device() == (y).device(), #x " and " #y " must be on the same device")
#define CHECK_INPUT_FLOAT(x) \
  CHECK_CONTIGUOUS(x);       \
  CHECK_FLOAT(x)
