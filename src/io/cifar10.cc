#include "io/cifar10.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qplay {

namespace fs = std::filesystem;

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird", "cat", "deer",
                                                 "dog", "frog", "horse", "ship", "truck"};
  return names;
}

Dataset parse_cifar10(const std::string& bytes, const std::string& label) {
  if (bytes.empty()) throw Error("data file '" + label + "' is empty");
  if (bytes.size() % kCifarRecord != 0)
    throw Error("data file '" + label + "' has " + std::to_string(bytes.size()) +
                " bytes, not a multiple of the 3,073-byte CIFAR-10 record (1 label + 3,072 pixels)");
  Dataset d;
  d.source = label;
  const size_t n = bytes.size() / kCifarRecord;
  d.labels.resize(n);
  d.pixels.resize(n * kCifarPixels);
  for (size_t i = 0; i < n; ++i) {
    const auto* rec = reinterpret_cast<const uint8_t*>(bytes.data()) + i * kCifarRecord;
    if (rec[0] >= kCifarClasses)
      throw Error("data file '" + label + "': record " + std::to_string(i) + " has label " +
                  std::to_string(rec[0]) + ", outside 0..9 (not a CIFAR-10 batch?)");
    d.labels[i] = rec[0];
    std::memcpy(&d.pixels[i * kCifarPixels], rec + 1, kCifarPixels);
  }
  return d;
}

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open data file '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void append(Dataset& into, const Dataset& more) {
  into.labels.insert(into.labels.end(), more.labels.begin(), more.labels.end());
  into.pixels.insert(into.pixels.end(), more.pixels.begin(), more.pixels.end());
}

}  // namespace

Dataset load_cifar10(const std::string& path, CifarSplit split) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("data path '" + path + "' does not exist");
  if (!fs::is_directory(path, ec)) return parse_cifar10(read_all(path), path);

  std::vector<std::string> files;
  if (split == CifarSplit::test) {
    files.push_back((fs::path(path) / "test_batch.bin").string());
  } else {
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("data_batch_", 0) == 0 && e.path().extension() == ".bin") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  }
  if (files.empty() || !fs::exists(files[0], ec))
    throw Error("folder '" + path + "' holds no CIFAR-10 " +
                std::string(split == CifarSplit::test ? "test_batch.bin" : "data_batch_*.bin") + " file");
  Dataset d;
  d.source = path;
  for (const auto& f : files) append(d, parse_cifar10(read_all(f), f));
  return d;
}

std::string default_test_sample_path() { return std::string(QPLAY_SOURCE_DIR) + "/data/cifar10_test_1000.bin"; }
std::string default_train_sample_path() { return std::string(QPLAY_SOURCE_DIR) + "/data/cifar10_train_1000.bin"; }

Tensor make_image_batch(const Dataset& data, int64_t begin, int64_t count, ImageLayout layout) {
  if (begin < 0 || count < 0 || begin + count > data.size())
    throw Error("image range [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                ") is outside the data set of " + std::to_string(data.size()) + " images");
  constexpr int hw = kCifarSide * kCifarSide;
  Tensor t(DType::f32, layout == ImageLayout::nhwc ? Shape{count, kCifarSide, kCifarSide, 3}
                                                   : Shape{count, 3, kCifarSide, kCifarSide});
  float* out = t.data<float>();
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* src = &data.pixels[(begin + i) * kCifarPixels];
    float* dst = out + i * kCifarPixels;
    if (layout == ImageLayout::nchw) {
      for (int k = 0; k < kCifarPixels; ++k) dst[k] = src[k];
    } else {
      for (int p = 0; p < hw; ++p)
        for (int c = 0; c < 3; ++c) dst[p * 3 + c] = src[c * hw + p];
    }
  }
  return t;
}

ImageLayout image_layout_for(const ValueInfo& input) {
  const Shape& s = input.shape;
  auto fits = [](int64_t dim, int64_t want) { return dim < 0 || dim == want; };
  if (input.dtype == DType::f32 && s.size() == 4) {
    if (fits(s[1], 32) && fits(s[2], 32) && fits(s[3], 3)) return ImageLayout::nhwc;
    if (fits(s[1], 3) && fits(s[2], 32) && fits(s[3], 32)) return ImageLayout::nchw;
  }
  throw Error("model input '" + input.name + "' is " + dtype_name(input.dtype) + " " + shape_str(s) +
              ", not compatible with CIFAR-10 images (float32 [N,32,32,3] or [N,3,32,32])");
}

}  // namespace qplay
