// runner/http_client.h: every inference request of the process, driven by
// one thread through libcurl's multi interface.
//
// A transfer is submitted once and never re-sent: a retry is a new attempt
// claimed through the database. abort() stops a transfer at once (auto-stop
// on cancel or a refused heartbeat); its completion is still delivered,
// with `aborted` set, so the caller sees exactly one completion per submit.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "inference.h"

namespace execguard::runner {

struct HttpTransfer {
    std::uint64_t id = 0;  // caller's id (the execution id)
    std::string url;
    std::string body;
    std::vector<std::string> headers;  // may hold Authorization; never logged
    double timeout_seconds = 120;
    double connect_timeout_seconds = 10;
};

struct HttpCompletion {
    std::uint64_t id = 0;
    bool aborted = false;
    HttpOutcome outcome;
};

class HttpClient {
public:
    // on_complete runs on the HTTP thread; it must be quick and thread-safe.
    explicit HttpClient(std::function<void(HttpCompletion)> on_complete);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    void start();
    void stop();  // aborts whatever is still running, joins the thread
    void submit(HttpTransfer transfer);
    void abort(std::uint64_t id);

private:
    struct Transfer;
    void run();

    std::function<void(HttpCompletion)> on_complete_;
    void* multi_ = nullptr;  // CURLM*, kept out of the header
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;  // guards the two queues below
    std::vector<HttpTransfer> to_start_;
    std::vector<std::uint64_t> to_abort_;
};

}  // namespace execguard::runner
