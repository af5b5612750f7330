#include "server/static_files.h"

#include <filesystem>
#include <map>
#include <system_error>

namespace qplay::server {

namespace fs = std::filesystem;

std::optional<std::string> resolve_static_path(const std::string& web_root, const std::string& request_path) {
  if (web_root.empty() || request_path.empty() || request_path[0] != '/') return std::nullopt;
  if (request_path.find('\\') != std::string::npos || request_path.find('\0') != std::string::npos) return std::nullopt;
  // Reject ".." anywhere as a segment before touching the file system (also "/a/../b").
  std::string rel = request_path.substr(1);
  for (size_t start = 0; start <= rel.size();) {
    const size_t slash = rel.find('/', start);
    const std::string segment = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (segment == "..") return std::nullopt;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);  // "//etc/passwd" must stay relative

  std::error_code ec;
  const fs::path root = fs::canonical(web_root, ec);
  if (ec) return std::nullopt;
  fs::path candidate = root / rel;
  if (fs::is_directory(candidate, ec)) candidate /= "index.html";
  const fs::path real = fs::canonical(candidate, ec);  // resolves symlinks; fails when missing
  if (ec || !fs::is_regular_file(real, ec)) return std::nullopt;
  // Inside root: root must be a prefix of the resolved path, segment by segment.
  auto r = root.begin();
  auto p = real.begin();
  for (; r != root.end(); ++r, ++p)
    if (p == real.end() || *r != *p) return std::nullopt;
  return real.string();
}

std::string content_type_for(const std::string& path) {
  static const std::map<std::string, std::string> types = {{".html", "text/html; charset=utf-8"},
                                                           {".js", "text/javascript; charset=utf-8"},
                                                           {".mjs", "text/javascript; charset=utf-8"},
                                                           {".css", "text/css; charset=utf-8"},
                                                           {".json", "application/json"},
                                                           {".svg", "image/svg+xml"},
                                                           {".png", "image/png"},
                                                           {".jpg", "image/jpeg"},
                                                           {".jpeg", "image/jpeg"},
                                                           {".ico", "image/x-icon"},
                                                           {".txt", "text/plain; charset=utf-8"},
                                                           {".map", "application/json"},
                                                           {".wasm", "application/wasm"},
                                                           {".woff2", "font/woff2"},
                                                           {".onnx", "application/octet-stream"}};
  const std::string ext = fs::path(path).extension().string();
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

}  // namespace qplay::server
