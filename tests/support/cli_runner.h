// The real qplay binary for CLI tests: its exit status and output, and the check that a
// failure is one clean line naming the problem.
#pragma once

#include <string>

namespace qplay::testing {

struct CliResult {
  int code = 0;
  std::string output;  // stdout and stderr together
};

// Runs `qplay ARGS` with the binary of this build (QPLAY_BINARY).
CliResult qplay_cli(const std::string& args);

// Exit status 1 (a handled error; a crash would be a signal), and exactly one line
// "qplay: error: ..." containing `fragment`.
void expect_clean_error(const CliResult& r, const std::string& fragment);

}  // namespace qplay::testing
