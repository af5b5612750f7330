// Static files of the web UI: only regular files inside the web directory are served.
#pragma once

#include <optional>
#include <string>

namespace qplay::server {

// The file `request_path` (URL path, already percent-decoded, e.g. "/app/main.js") names inside `web_root`,
// or nothing when it must not be served: a ".." segment, a backslash or NUL, or a path that resolves
// (symlinks included) outside web_root. "/" and directories map to index.html.
std::optional<std::string> resolve_static_path(const std::string& web_root, const std::string& request_path);

// Content type by file extension ("application/octet-stream" when unknown).
std::string content_type_for(const std::string& path);

}  // namespace qplay::server
