#include "server/images.h"

#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include <memory>

#include "graph/ir.h"
#include "io/cifar10.h"

namespace qplay::server {

std::string cifar_image_png(const uint8_t* planar) {
  constexpr int side = kCifarSide, plane = side * side;
  std::vector<uint8_t> rgb(3 * plane);  // interleaved, as PNG wants
  for (int i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) rgb[3 * i + c] = planar[c * plane + i];
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(append, &png, side, side, 3, rgb.data(), 3 * side))
    throw Error("cannot encode the image as PNG");
  return png;
}

std::vector<uint8_t> decode_image_to_cifar(const std::string& bytes) {
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<uint8_t, void (*)(void*)> pixels(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &w, &h,
                            &channels, 3),
      stbi_image_free);
  if (!pixels) throw Error(std::string("the upload is not a PNG or JPEG image (") + stbi_failure_reason() + ")");
  constexpr int side = kCifarSide, plane = side * side;
  std::vector<uint8_t> rgb(3 * plane);
  if (w == side && h == side) {
    std::copy(pixels.get(), pixels.get() + rgb.size(), rgb.begin());
  } else if (!stbir_resize_uint8(pixels.get(), w, h, 0, rgb.data(), side, side, 0, 3)) {
    throw Error("cannot resize the " + std::to_string(w) + "x" + std::to_string(h) + " image to 32x32");
  }
  std::vector<uint8_t> planar(kCifarPixels);
  for (int i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) planar[c * plane + i] = rgb[3 * i + c];
  return planar;
}

std::string base64_decode(const std::string& text) {
  size_t begin = 0;
  if (text.rfind("data:", 0) == 0) {
    const size_t comma = text.find(',');
    if (comma == std::string::npos) throw Error("the data URL has no ',' before its base64 payload");
    begin = comma + 1;
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = begin; i < text.size(); ++i) {
    const char c = text[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    else
      throw Error("invalid base64 character at offset " + std::to_string(i));
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

}  // namespace qplay::server
