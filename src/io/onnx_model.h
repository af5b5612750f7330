// ONNX <-> IR. Import reads a .onnx file with the official ONNX protobuf definitions and
// returns a validated, topologically sorted Graph; export writes a Graph back out.
#pragma once

#include <string>

#include "graph/ir.h"

namespace qplay {

// Reads and validates a model file. Throws qplay::Error naming the file and the problem:
// missing/unreadable file, not ONNX, unsupported op (with node and opset), bad tensor data,
// invalid quantization parameters.
Graph load_onnx(const std::string& path);

// Same from bytes already in memory (uploads); `label` names the source in messages.
Graph load_onnx_from_bytes(const std::string& bytes, const std::string& label);

// Serialises the graph as an ONNX model (opset g.opset, weights as raw_data).
std::string export_onnx_bytes(const Graph& g);
void save_onnx(const Graph& g, const std::string& path);

// Parses a serialized onnx.TensorProto (the .pb files of the ONNX conformance tests).
Tensor load_tensor_proto(const std::string& bytes, const std::string& label);

// Lowest and highest default-domain opset qplay accepts.
constexpr int64_t kMinOpset = 10;
constexpr int64_t kMaxOpset = 21;

}  // namespace qplay
