// Images in and out of the server: CIFAR-10 records as PNG, and uploaded PNG/JPEG files as CIFAR-10 pixels
// (32x32, planar RGB), plus the base64 the JSON API carries them in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qplay::server {

// PNG of one 32x32 planar (R, G, B planes) image, as stored in a CIFAR-10 record.
std::string cifar_image_png(const uint8_t* planar);

// Decodes a PNG/JPEG/BMP/GIF (first frame) and resizes it to 32x32 when needed:
// 3072 bytes, planar RGB. Throws qplay::Error naming the problem when the bytes are not an image.
std::vector<uint8_t> decode_image_to_cifar(const std::string& bytes);

// Standard base64 (RFC 4648, padding optional, whitespace ignored; a "data:...;base64," prefix is skipped).
// Throws qplay::Error on other characters.
std::string base64_decode(const std::string& text);

}  // namespace qplay::server
