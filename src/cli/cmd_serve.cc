// qplay serve: the playground in the browser. Loads the models and the data set once, then serves the web UI
// and the JSON API of docs/API.md until interrupted.
#include <csignal>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "io/cifar10.h"
#include "server/http_server.h"

namespace qplay::cli {
namespace {

namespace fs = std::filesystem;

server::HttpServer* g_server = nullptr;

void on_signal(int) {
  if (g_server) g_server->stop();  // listen() returns; the destructors then join jobs and caches
}

// The web UI is copied next to the binary by the build (build/web).
std::string default_web_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("web") : (exe.parent_path() / "web").string();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> models;
    std::string data;
    std::string host = "127.0.0.1";
    int port = 8321;
    std::string workspace = "qplay-workspace";
    std::string web;
    int threads = 2;
    int64_t cache_images = -1;
    int64_t cache_budget_mb = 4096;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("serve", "The playground in the browser: web UI and JSON API (docs/API.md)");
  cmd->add_option("--model", opt->models,
                  "ONNX model to load (repeatable; default: "
                  "models/resnet8_fp32.onnx, resnet8_int8.onnx, "
                  "resnet8_uint8.onnx); the first FP32 model is the reference");
  cmd->add_option("--data", opt->data,
                  "CIFAR-10 batch file or cifar-10-batches-bin folder "
                  "(default: the shipped 1,000-image sample)");
  cmd->add_option("--host", opt->host, "address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", opt->port, "port (default 8321; 0 picks a free one)");
  cmd->add_option("--workspace", opt->workspace,
                  "directory for history.json and new models (default ./qplay-workspace)");
  cmd->add_option("--web", opt->web, "directory of the web UI (default: web/ next to the qplay binary)");
  cmd->add_option("--threads", opt->threads, "worker threads per job")->check(CLI::Range(1, 256));
  cmd->add_option("--cache-images", opt->cache_images,
                  "images kept in the re-evaluation caches (default: the whole data set; ~130 KB each for ResNet-8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cache-budget-mb", opt->cache_budget_mb,
                  "memory all re-evaluation caches may use together; past it the least recently used are dropped "
                  "and rebuilt when needed (default 4096; 0: no limit)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->callback([opt] {
    if (opt->port < 0 || opt->port > 65535) throw Error("--port " + std::to_string(opt->port) + " is outside 0..65535");
    server::PlaygroundOptions po;
    po.models = opt->models;
    if (po.models.empty()) {
      const std::string dir = std::string(QPLAY_SOURCE_DIR) + "/models/";
      po.models = {dir + "resnet8_fp32.onnx", dir + "resnet8_int8.onnx", dir + "resnet8_uint8.onnx"};
    }
    po.data = opt->data;
    po.workspace = opt->workspace;
    po.threads = opt->threads;
    po.cache_images = opt->cache_images;
    po.cache_budget_bytes = opt->cache_budget_mb << 20;
    server::Playground playground(po);
    const std::string web = opt->web.empty() ? default_web_dir() : opt->web;
    if (!fs::is_directory(web)) std::cerr << "qplay: warning: no web UI in '" << web << "'; serving the API only\n";
    server::HttpServer http(playground, web);
    const int port = http.bind(opt->host, opt->port);
    if (opt->host != "127.0.0.1" && opt->host != "localhost" && opt->host != "::1")
      std::cerr << "qplay: warning: listening on " << opt->host
                << ": anyone who can reach this address can use the playground "
                   "(there is no authentication)\n";
    std::cout << "qplay: serving http://" << opt->host << ":" << port << "/" << std::endl;  // flushed: tests read it
    g_server = &http;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    http.listen();
    g_server = nullptr;
  });
}

}  // namespace qplay::cli
