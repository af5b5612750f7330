#include "server/http_server.h"

#include <httplib.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>

#include "analysis/batches.h"
#include "server/static_files.h"

namespace qplay::server {

using nlohmann::json;

namespace {

constexpr size_t kJsonBodyBytes = 8u << 20;  // an infer request with a 4 MB image in base64, and then some
constexpr int kServerThreads = 32;           // event streams hold a thread each while they last

void send_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

json parse_body(const httplib::Request& req) {
  if (req.body.size() > kJsonBodyBytes)
    throw HttpError(413, "the request body is larger than " + std::to_string(kJsonBodyBytes >> 20) + " MB");
  if (req.body.empty()) throw HttpError(400, "the request needs a JSON body");
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw HttpError(400, std::string("invalid JSON: ") + e.what());
  }
}

// The whole of `text` as a decimal integer, or nothing.
std::optional<int64_t> parse_integer(const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used == 0 || used != text.size()) return std::nullopt;
  return v;
}

// A path segment that must be an integer id (version, job, image).
int64_t parse_id(const std::string& text, const std::string& what) {
  const auto v = parse_integer(text);
  if (!v) throw HttpError(404, "unknown " + what + " '" + text + "' (not an integer id)");
  return *v;
}

int64_t int_param(const httplib::Request& req, const char* key, int64_t fallback) {
  if (!req.has_param(key)) return fallback;
  const std::string text = req.get_param_value(key);
  const auto v = parse_integer(text);
  if (!v) throw HttpError(400, std::string("query parameter '") + key + "' must be an integer (got '" + text + "')");
  return *v;
}

// Maps whatever a handler threw to a JSON error; nothing escapes to httplib.
void send_exception(httplib::Response& res, std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const HttpError& e) {
    send_error(res, e.status, e.what());
  } catch (const Error& e) {
    // Validation in the library: the request asked for something invalid.
    send_error(res, 400, e.what());
  } catch (const json::exception& e) {
    send_error(res, 400, std::string("bad JSON field: ") + e.what());
  } catch (const Cancelled&) {
    send_error(res, 503, "the server is shutting down");
  } catch (const std::exception& e) {
    send_error(res, 500, std::string("internal error: ") + e.what());
  } catch (...) {
    send_error(res, 500, "internal error");
  }
}

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

Handler guarded(Handler h) {
  return [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    try {
      h(req, res);
    } catch (...) {
      send_exception(res, std::current_exception());
    }
  };
}

std::string status_message(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 413:
      return "the request body is too large (models: 64 MB, images: 4 MB)";
    case 414:
      return "the request URI is too long";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

// One "event: NAME / data: JSON" block of a text/event-stream.
std::string sse_event(const std::string& name, const json& data) {
  return "event: " + name + "\ndata: " + data.dump() + "\n\n";
}

}  // namespace

HttpServer::HttpServer(Playground& playground, std::string web_dir)
    : playground_(playground), web_dir_(std::move(web_dir)), server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  // Bodies above this are refused by httplib with 413 before they are read; smaller limits (images, JSON) are
  // checked per route.
  server_->set_payload_max_length(kModelUploadBytes + (1u << 20));
  // Debian's libcpp-httplib is built with Brotli, which it applies at quality 11 to every text/JSON
  // answer of a client accepting "br": 41 s for the 4.8 MB plotly.min.js. Offer httplib gzip only
  // (0.4 s) by rewriting the header before it picks an encoding (it reads it when writing the
  // answer; the Request object is ours to change, httplib hands it out as const).
  server_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    auto& headers = const_cast<httplib::Request&>(req).headers;
    const auto range = headers.equal_range("Accept-Encoding");  // httplib's header map ignores case
    for (auto it = range.first; it != range.second; ++it)
      it->second = it->second.find("gzip") != std::string::npos ? "gzip" : "identity";
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) { send_exception(res, ep); });
  server_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    // A handler wrote its own error; the rest (404 of no route, 413 of httplib) get JSON here.
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, res.status, status_message(res.status));
    return httplib::Server::HandlerResponse::Handled;
  }));
  add_routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind(const std::string& host, int port) {
  if (port < 0 || port > 65535) throw Error("port " + std::to_string(port) + " is outside 0..65535");
  int bound = -1;
  if (port == 0)
    bound = server_->bind_to_any_port(host);
  else
    bound = server_->bind_to_port(host, port) ? port : -1;
  if (bound < 0) throw Error("cannot listen on " + host + ":" + std::to_string(port) + " (address in use or invalid)");
  return bound;
}

void HttpServer::listen() { server_->listen_after_bind(); }

void HttpServer::start_background() {
  listener_ = std::thread([this] { server_->listen_after_bind(); });
  // The socket already accepts connections (bind listens); waiting for the loop makes an early stop()
  // effective instead of racing the thread's start.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::stop() {
  server_->stop();
  if (listener_.joinable()) listener_.join();
}

void HttpServer::add_routes() {
  httplib::Server& s = *server_;
  Playground& pg = playground_;

  // Known API paths and their methods: the same path with another method gets 405, not 404.
  struct Route {
    std::string pattern;
    std::vector<std::string> methods;
  };
  std::vector<Route> routes;
  auto get = [&](const std::string& pattern, Handler h) {
    s.Get(pattern, guarded(std::move(h)));
    routes.push_back({pattern, {"GET"}});
  };
  auto post = [&](const std::string& pattern, Handler h) {
    s.Post(pattern, guarded(std::move(h)));
    routes.push_back({pattern, {"POST"}});
  };
  auto del = [&](const std::string& pattern, Handler h) {
    s.Delete(pattern, guarded(std::move(h)));
    routes.push_back({pattern, {"DELETE"}});
  };

  get("/api/session", [&pg](const auto&, auto& res) { send_json(res, pg.session_json()); });

  post("/api/models", [&pg](const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() > kModelUploadBytes)
      throw HttpError(413, "the model is larger than " + std::to_string(kModelUploadBytes >> 20) + " MB");
    if (req.body.empty()) throw HttpError(400, "the request body must be the ONNX file");
    send_json(res, pg.add_model(req.body, req.has_param("name") ? req.get_param_value("name") : "upload"), 201);
  });
  get(R"(/api/models/([^/]+)/graph)",
      [&pg](const httplib::Request& req, auto& res) { send_json(res, pg.graph_json(req.matches[1])); });

  get(R"(/api/models/([^/]+)/modes)",
      [&pg](const httplib::Request& req, auto& res) { send_json(res, pg.mode_comparison(req.matches[1])); });

  get("/api/versions", [&pg](const auto&, auto& res) { send_json(res, pg.versions_json()); });
  post("/api/versions",
       [&pg](const httplib::Request& req, auto& res) { send_json(res, pg.create_version(parse_body(req)), 201); });
  get(R"(/api/versions/([^/]+))", [&pg](const httplib::Request& req, auto& res) {
    send_json(res, pg.version_json(parse_id(req.matches[1], "version")));
  });
  get(R"(/api/versions/([^/]+)/quant)", [&pg](const httplib::Request& req, auto& res) {
    send_json(res, pg.quant_json(parse_id(req.matches[1], "version")));
  });
  get(R"(/api/versions/([^/]+)/export\.onnx)", [&pg](const httplib::Request& req, httplib::Response& res) {
    const auto [bytes, name] = pg.export_onnx(parse_id(req.matches[1], "version"));
    res.set_header("Content-Disposition", "attachment; filename=\"" + name + "\"");
    res.set_content(bytes, "application/octet-stream");
  });
  get(R"(/api/versions/([^/]+)/residuals)", [&pg](const httplib::Request& req, auto& res) {
    const int64_t limit = int_param(req, "limit", 200);
    if (limit < 1) throw HttpError(400, "limit must be at least 1");
    send_json(res, pg.residuals(parse_id(req.matches[1], "version"), limit));
  });
  get(R"(/api/versions/([^/]+)/layers/([^/]+))", [&pg](const httplib::Request& req, auto& res) {
    const int64_t limit = int_param(req, "limit", 100);
    if (limit < 1) throw HttpError(400, "limit must be at least 1");
    const int64_t image = int_param(req, "image", -1);
    if (req.has_param("image") && image < 0)
      throw HttpError(404, "image " + std::to_string(image) + " is out of range");
    send_json(res, pg.layer_json(parse_id(req.matches[1], "version"), req.matches[2], image,
                                 static_cast<int>(int_param(req, "bins", 64)), limit));
  });

  get("/api/images", [&pg](const httplib::Request& req, auto& res) {
    send_json(res, pg.images_json(int_param(req, "offset", 0), int_param(req, "limit", 100)));
  });
  get(R"(/api/images/([^/]+)\.png)", [&pg](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Cache-Control", "max-age=3600");
    res.set_content(pg.image_png(parse_id(req.matches[1], "image")), "image/png");
  });

  post("/api/infer", [&pg](const httplib::Request& req, auto& res) { send_json(res, pg.infer(parse_body(req))); });

  get("/api/jobs", [&pg](const auto&, auto& res) { send_json(res, pg.jobs_json()); });
  post("/api/jobs", [&pg](const httplib::Request& req, auto& res) {
    const int64_t id = pg.start_job(parse_body(req));
    send_json(res, {{"id", id}}, 202);
  });
  get(R"(/api/jobs/([^/]+))", [&pg](const httplib::Request& req, auto& res) {
    send_json(res, pg.job(parse_id(req.matches[1], "job"))->to_json());
  });
  del(R"(/api/jobs/([^/]+))", [&pg](const httplib::Request& req, auto& res) {
    send_json(res, pg.cancel_job(parse_id(req.matches[1], "job")));
  });
  get(R"(/api/jobs/([^/]+)/events)", [&pg](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<Job> job = pg.job(parse_id(req.matches[1], "job"));
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto seen = std::make_shared<uint64_t>(~uint64_t(0));  // nothing sent yet
    auto idle = std::make_shared<int>(0);
    res.set_chunked_content_provider("text/event-stream", [&pg, job, seen, idle](size_t, httplib::DataSink& sink) {
      std::string chunk;
      bool final_event = false;
      {
        std::unique_lock<std::mutex> lock(job->mu);
        // Short waits, so a closed tab or a server shutdown frees this thread within a second.
        job->changed.wait_for(lock, std::chrono::seconds(1), [&] { return job->revision != *seen || job->finished(); });
        if (job->finished()) {
          const std::string name = job->state == "done" ? "done" : job->state == "failed" ? "error" : "cancelled";
          chunk = sse_event(name, job->to_json_locked());
          final_event = true;
        } else if (job->revision != *seen) {
          chunk = sse_event("progress", {{"done", job->done}, {"total", job->total}});
          *seen = job->revision;
          *idle = 0;
        } else if (++*idle >= 15) {
          // A comment line: keeps proxies and browsers from timing out.
          chunk = ": keep-alive\n\n";
          *idle = 0;
        }
      }
      if (!chunk.empty() && !sink.write(chunk.data(), chunk.size())) return false;
      if (final_event || pg.stopping()) sink.done();
      return true;
    });
  });

  // The same API paths with other methods: 405 naming the allowed ones.
  std::map<std::string, std::vector<std::string>> allowed;
  for (const auto& r : routes) allowed[r.pattern].insert(allowed[r.pattern].end(), r.methods.begin(), r.methods.end());
  for (const auto& [pattern, methods] : allowed) {
    std::string list;
    for (const auto& m : methods) list += (list.empty() ? "" : ", ") + m;
    auto refuse = [list](const httplib::Request& req, httplib::Response& res) {
      send_error(res, 405, "method " + req.method + " is not allowed on " + req.path + " (allowed: " + list + ")");
      res.set_header("Allow", list);
    };
    auto has = [&](const char* m) { return std::find(methods.begin(), methods.end(), m) != methods.end(); };
    if (!has("GET")) s.Get(pattern, refuse);
    if (!has("POST")) s.Post(pattern, refuse);
    if (!has("DELETE")) s.Delete(pattern, refuse);
    s.Put(pattern, refuse);
    s.Patch(pattern, refuse);
  }
  auto no_api = [](const httplib::Request& req, httplib::Response& res) {
    send_error(res, 404, "no API endpoint " + req.method + " " + req.path + " (see docs/API.md)");
  };
  s.Post(R"(/api/.*)", no_api);
  s.Put(R"(/api/.*)", no_api);
  s.Delete(R"(/api/.*)", no_api);
  s.Patch(R"(/api/.*)", no_api);

  // Static files: the web UI. Registered last, so every /api route above wins.
  const std::string web = web_dir_;
  s.Get(R"(/.*)", guarded([web](const httplib::Request& req, httplib::Response& res) {
          if (req.path == "/api" || req.path.rfind("/api/", 0) == 0) {
            send_error(res, 404, "no API endpoint GET " + req.path + " (see docs/API.md)");
            return;
          }
          const auto file = resolve_static_path(web, req.path);
          if (!file) {
            if (req.path == "/")
              send_error(res, 404,
                         "the web UI is not installed in '" + web + "' (build qplay with CMake, or pass --web DIR)");
            else
              send_error(res, 404, "no file '" + req.path + "' in the web directory");
            return;
          }
          std::ifstream f(*file, std::ios::binary);
          std::stringstream ss;
          ss << f.rdbuf();
          // Vendored libraries (Plotly is 4.8 MB) do not change while the server runs.
          if (req.path.rfind("/vendor/", 0) == 0) res.set_header("Cache-Control", "max-age=3600");
          res.set_content(ss.str(), content_type_for(*file).c_str());
        }));
}

}  // namespace qplay::server
