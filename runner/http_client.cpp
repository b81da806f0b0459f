// runner/http_client.cpp
#include "http_client.h"

#include <curl/curl.h>

#include <cstring>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>

namespace execguard::runner {

namespace {
// The request body as libcurl reads it (see read_body).
struct Upload {
    const std::string* body = nullptr;
    std::size_t sent = 0;  // bytes handed to libcurl so far
};
// The response body as libcurl writes it (see write_body).
struct ResponseBody {
    std::string bytes;
    bool too_large = false;  // passed kMaxResponseBodyBytes; the transfer stopped there
};
}  // namespace

struct HttpClient::Transfer {
    HttpTransfer request;
    CURL* easy = nullptr;
    curl_slist* header_list = nullptr;
    ResponseBody response_body;
    std::map<std::string, std::string> response_headers;
    std::chrono::steady_clock::time_point started;
    Upload upload;

    ~Transfer() {
        if (easy) curl_easy_cleanup(easy);
        if (header_list) curl_slist_free_all(header_list);
    }
};

namespace {

// The request body goes out through a read callback, never POSTFIELDS, so
// that libcurl cannot send it twice. When a reused keep-alive connection
// turns out to have been closed by the server after the request went out,
// libcurl re-sends the request on a new connection by itself, which needs
// the body rewound: seek_body refuses, and the transfer fails
// (CURLE_SEND_FAIL_REWIND, a network error) instead of making a second
// model call for one grant. A retry is a new attempt through the database.
std::size_t read_body(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* upload = static_cast<Upload*>(user);
    const std::size_t n = std::min(size * count, upload->body->size() - upload->sent);
    std::memcpy(buffer, upload->body->data() + upload->sent, n);
    upload->sent += n;
    return n;
}

int seek_body(void* user, curl_off_t offset, int origin) {
    auto* upload = static_cast<Upload*>(user);
    // Rewinding a body that was never sent is harmless (nothing reached the
    // server); anything else would be a second request.
    if (origin == SEEK_SET && offset == 0 && upload->sent == 0) {
        return CURL_SEEKFUNC_OK;
    }
    return CURL_SEEKFUNC_FAIL;
}

// A runaway response must not eat the runner's memory: past the cap the
// transfer stops (CURLE_WRITE_ERROR), and the flag tells that apart from a
// network failure, because the provider did answer.
std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* body = static_cast<ResponseBody*>(user);
    if (body->bytes.size() + size * count > kMaxResponseBodyBytes) {
        body->too_large = true;
        return 0;
    }
    body->bytes.append(data, size * count);
    return size * count;
}

std::size_t write_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto* headers = static_cast<std::map<std::string, std::string>*>(user);
    std::string line(data, size * count);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        value.erase(value.find_last_not_of(" \t\r\n") + 1);
        (*headers)[name] = value;
    }
    return size * count;
}

TransportError classify_curl(CURLcode code) {
    if (code == CURLE_OK) return TransportError::none;
    if (code == CURLE_OPERATION_TIMEDOUT) return TransportError::timeout;
    return TransportError::network;
}

}  // namespace

HttpClient::HttpClient(std::function<void(HttpCompletion)> on_complete) : on_complete_(std::move(on_complete)) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi_ = curl_multi_init();
    if (!multi_) throw std::runtime_error("curl_multi_init failed");
}

HttpClient::~HttpClient() {
    stop();
    curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void HttpClient::start() {
    thread_ = std::thread([this] { run(); });
}

void HttpClient::stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    curl_multi_wakeup(static_cast<CURLM*>(multi_));
    thread_.join();
}

void HttpClient::submit(HttpTransfer transfer) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        to_start_.push_back(std::move(transfer));
    }
    curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void HttpClient::abort(std::uint64_t id) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        to_abort_.push_back(id);
    }
    curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void HttpClient::run() {
    CURLM* multi = static_cast<CURLM*>(multi_);
    std::map<std::uint64_t, std::unique_ptr<Transfer>> active;

    auto finish = [&](std::uint64_t id, bool aborted, CURLcode code) {
        auto it = active.find(id);
        if (it == active.end()) return;
        Transfer& t = *it->second;
        HttpCompletion done;
        done.id = id;
        done.aborted = aborted;
        done.outcome.latency_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t.started).count();
        if (!aborted) {
            done.outcome.transport =
                t.response_body.too_large ? TransportError::response_too_large : classify_curl(code);
            if (code != CURLE_OK) done.outcome.transport_message = curl_easy_strerror(code);
            curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &done.outcome.status);
            done.outcome.body = std::move(t.response_body.bytes);
            done.outcome.headers = std::move(t.response_headers);
        }
        curl_multi_remove_handle(multi, t.easy);
        active.erase(it);
        on_complete_(std::move(done));
    };

    while (true) {
        std::vector<HttpTransfer> starting;
        std::vector<std::uint64_t> aborting;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            starting.swap(to_start_);
            aborting.swap(to_abort_);
        }
        for (auto& request : starting) {
            auto t = std::make_unique<Transfer>();
            t->request = std::move(request);
            t->easy = curl_easy_init();
            for (const auto& h : t->request.headers) t->header_list = curl_slist_append(t->header_list, h.c_str());
            CURL* e = t->easy;
            curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
            t->upload.body = &t->request.body;
            curl_easy_setopt(e, CURLOPT_READDATA, &t->upload);
            curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_body);
            curl_easy_setopt(e, CURLOPT_SEEKDATA, &t->upload);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request.body.size()));
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->header_list);
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body);
            curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->response_body);
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, write_header);
            curl_easy_setopt(e, CURLOPT_HEADERDATA, &t->response_headers);
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(t->request.timeout_seconds * 1000));
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                             static_cast<long>(t->request.connect_timeout_seconds * 1000));
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
            // Never follow redirects: a redirected POST would be a second call.
            curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
            curl_easy_setopt(e, CURLOPT_PRIVATE, reinterpret_cast<void*>(static_cast<std::uintptr_t>(t->request.id)));
            t->started = std::chrono::steady_clock::now();
            const std::uint64_t id = t->request.id;
            if (active.count(id)) finish(id, true, CURLE_OK);  // should not happen; keep one per id
            curl_multi_add_handle(multi, e);
            active.emplace(id, std::move(t));
        }
        for (auto id : aborting) finish(id, true, CURLE_OK);
        if (stopping_) {
            while (!active.empty()) finish(active.begin()->first, true, CURLE_OK);
            return;
        }

        int running = 0;
        curl_multi_perform(multi, &running);
        int queued = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
            if (msg->msg != CURLMSG_DONE) continue;
            void* priv = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            finish(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(priv)), false, msg->data.result);
        }
        curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
}

}  // namespace execguard::runner
