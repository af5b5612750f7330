// CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace qplay {

constexpr int kCifarSide = 32;
constexpr int kCifarPixels = 3 * kCifarSide * kCifarSide;  // 3072
constexpr int kCifarRecord = 1 + kCifarPixels;             // 3073
constexpr int kCifarClasses = 10;

const std::vector<std::string>& cifar10_class_names();

struct Dataset {
  std::string source;              // file(s) it was read from
  std::vector<uint8_t> labels;     // one per image, 0..9
  std::vector<uint8_t> pixels;     // kCifarPixels per image, planar CHW as in the file
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

enum class CifarSplit { test, train };

// `path` is a batch file (test_batch.bin, data_batch_N.bin) or a cifar-10-batches-bin folder,
// from which the test split reads test_batch.bin and the train split every data_batch_*.bin.
// Throws qplay::Error for a missing file, a size that is not a whole number of records, or a
// label outside 0..9.
Dataset load_cifar10(const std::string& path, CifarSplit split = CifarSplit::test);

// Parses records already in memory (uploads, tests).
Dataset parse_cifar10(const std::string& bytes, const std::string& label);

// The 1,000-image stratified samples shipped in the repo (data/).
std::string default_test_sample_path();
std::string default_train_sample_path();

enum class ImageLayout { nhwc, nchw };

// Float32 pixels 0..255 of images [begin, begin + count) as one batch tensor.
Tensor make_image_batch(const Dataset& data, int64_t begin, int64_t count, ImageLayout layout);

// Picks the layout a model's image input expects from its shape ([N,32,32,3] or [N,3,32,32]);
// throws naming the input and its shape when neither fits.
ImageLayout image_layout_for(const ValueInfo& input);

}  // namespace qplay
