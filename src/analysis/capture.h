// Keeps intermediate tensors of a run, through the executor's ValueHook: the model is not
// changed. Memory is bounded by asking only for the values needed; an empty request keeps all.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/cifar10.h"
#include "runtime/executor.h"

namespace qplay {

struct Capture {
  std::map<std::string, Tensor> values;  // kept tensors by value name, batch dimension first
  // For each kept QuantizeLinear output (integer codes): the value of its DequantizeLinear
  // (the same numbers as float32), also kept.
  std::map<std::string, std::string> dequantized_of;

  // The kept tensor `value`; throws qplay::Error naming it when it was not captured.
  const Tensor& at(const std::string& value) const;
  bool has(const std::string& value) const { return values.count(value) != 0; }
};

// Completes a request so quantized tensors come in pairs: asking for a QuantizeLinear output
// adds its DequantizeLinear output and vice versa. Throws naming the first unknown value.
std::vector<std::string> expand_capture_request(const Graph& g, const std::vector<std::string>& values);

// Runs `executor` on `feeds` and keeps the requested values (graph inputs included); `keep`
// empty = every value. Unknown names throw qplay::Error.
Capture capture_values(const Executor& executor, const std::map<std::string, Tensor>& feeds,
                       const std::vector<std::string>& keep = {});

// Same, into `into`: its tensors' buffers are reused when the same values come back, so a
// per-thread Capture kept across batches allocates (and page-faults) only once.
void capture_values_into(Capture& into, const Executor& executor, const std::map<std::string, Tensor>& feeds,
                         const std::vector<std::string>& keep);

// Same for images [first, first + count) of a CIFAR-10 data set, fed to the model's one input.
Capture capture_images(const Executor& executor, const Dataset& data, int64_t first, int64_t count,
                       const std::vector<std::string>& keep = {});

// The one image input of an image classifier, validated (throws naming the count otherwise).
const ValueInfo& image_input(const Graph& g);

}  // namespace qplay
