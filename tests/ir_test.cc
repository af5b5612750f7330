#include <gtest/gtest.h>

#include "graph/ir.h"

using namespace qplay;

TEST(Graph, TopologicalSortReordersAndDetectsMissingValues) {
  Graph g;
  g.inputs.push_back({"x", DType::f32, {1}, {}});
  Node b{"b", "Relu", "", {"y"}, {"z"}, {}};
  Node a{"a", "Relu", "", {"x"}, {"y"}, {}};
  g.nodes = {b, a};
  sort_topologically(g);
  ASSERT_EQ(g.nodes[0].name, "a");
  ASSERT_EQ(g.nodes[1].name, "b");
  g.nodes.push_back(Node{"c", "Relu", "", {"nowhere"}, {"w"}, {}});
  EXPECT_THROW(sort_topologically(g), Error);
}

TEST(Tensor, ShapeAndNumel) {
  Tensor t(DType::i8, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.bytes.size(), 24u);
  EXPECT_EQ(shape_str({-1, 32}), "[?,32]");
}
