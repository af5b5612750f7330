// The HTTP front end of the playground: JSON routes under /api (docs/API.md) and the web UI's static files,
// on cpp-httplib. Handlers only parse and validate the request, call the Playground and write JSON; every
// error becomes {"error": "..."} with a 4xx status, and no exception escapes a handler.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "server/playground.h"

namespace httplib {
class Server;
}

namespace qplay::server {

class HttpServer {
 public:
  // `web_dir`: the directory static files are served from ("" or missing: only the API).
  HttpServer(Playground& playground, std::string web_dir);
  ~HttpServer();  // stops and joins a background listener
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: any free port) and returns the port bound. Throws qplay::Error naming the
  // address when it cannot bind.
  int bind(const std::string& host, int port);
  void listen();            // serves until stop(); call after bind()
  void start_background();  // listen() on a thread of its own (tests)
  void stop();

 private:
  void add_routes();

  Playground& playground_;
  std::string web_dir_;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
};

}  // namespace qplay::server
