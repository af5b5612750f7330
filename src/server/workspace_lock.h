// One server per workspace: an exclusive advisory lock (flock) on WORKSPACE/.qplay-lock, held for
// the server's lifetime. Two servers on one workspace would each rewrite history.json from their
// own state and lose the other's versions; the second one is refused instead, naming the first.
#pragma once

#include <string>

namespace qplay {

class WorkspaceLock {
 public:
  // Throws Error when another process (or another Playground in this one) holds the lock.
  explicit WorkspaceLock(const std::string& workspace);
  ~WorkspaceLock();
  WorkspaceLock(const WorkspaceLock&) = delete;
  WorkspaceLock& operator=(const WorkspaceLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace qplay
