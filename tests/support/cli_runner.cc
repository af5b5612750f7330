#include "support/cli_runner.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "support/test_support.h"

namespace qplay::testing {

CliResult qplay_cli(const std::string& args) {
  CliResult r;
  r.code = run_command(std::string(QPLAY_BINARY) + " " + args, r.output);
  return r;
}

void expect_clean_error(const CliResult& r, const std::string& fragment) {
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("qplay: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "not one line: " << r.output;
}

}  // namespace qplay::testing
