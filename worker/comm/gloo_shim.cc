// gloo_shim.cc -- e2w_comm's Gloo engine: the only C++ in the worker,
// because Gloo is a C++ library. It turns e2w_comm's C store callbacks into
// a gloo::rendezvous::Store, connects a full mesh over Gloo's TCP transport
// and runs the collectives on Gloo's unbound buffers (send/recv by rank
// and slot), turning every exception into an error code and one line.
//
// The collectives are written here (a ring all-reduce: reduce-scatter then
// all-gather, 2 (W-1)/W of the buffer sent per rank; the ring all-gather
// alone, (W-1)/W; broadcast from the root; barrier as a one-float
// all-reduce) rather than taken from
// gloo/allreduce.h because an abort must be able to wake a collective
// blocked in another thread: holding the buffers lets gloo_abort call
// abortWaitRecv/abortWaitSend on them, then close the pairs so the peers'
// collectives fail too. Gloo's own algorithms keep their buffers private.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>

#include "base.h"
#include "comm_internal.h"

namespace {

struct Aborted : std::exception {
    const char *what() const noexcept override {
        return "aborted";
    }
};

// gloo::rendezvous::Store over the caller's callbacks. wait() fetches the
// values and keeps them, so the get() that follows costs nothing. (No abort
// check here: the communicator does not exist for anyone to abort until the
// connect is over; the callbacks themselves give up when the caller's rank
// is stopped.)
class CallbackStore : public gloo::rendezvous::Store {
  public:
    CallbackStore(const e2w_comm_store &s, int timeout_ms) : s_(s), timeout_ms_(timeout_ms) {}

    void set(const std::string &key, const std::vector<char> &data) override {
        char err[E2_ERRLEN] = "";
        if (s_.set(s_.ud, key.c_str(), data.data(), data.size(), err, sizeof err) < 0)
            throw std::runtime_error(std::string("rendezvous set: ") + err);
    }

    std::vector<char> get(const std::string &key) override {
        auto it = cache_.find(key);
        if (it == cache_.end()) {
            fetch(key, std::chrono::milliseconds(timeout_ms_));
            it = cache_.find(key);
        }
        return it->second;
    }

    void wait(const std::vector<std::string> &keys) override {
        wait(keys, std::chrono::milliseconds(timeout_ms_));
    }

    void wait(const std::vector<std::string> &keys,
              const std::chrono::milliseconds &timeout) override {
        for (const auto &k : keys)
            if (!cache_.count(k)) fetch(k, timeout);
    }

  private:
    void fetch(const std::string &key, std::chrono::milliseconds timeout) {
        char err[E2_ERRLEN] = "";
        void *v = nullptr;
        size_t n = 0;
        if (s_.get(s_.ud, key.c_str(), (int)timeout.count(), &v, &n, err, sizeof err) < 0)
            throw std::runtime_error(std::string("rendezvous get: ") + err);
        cache_[key] = std::vector<char>((char *)v, (char *)v + n);
        free(v);
    }

    e2w_comm_store s_;
    int timeout_ms_;
    std::map<std::string, std::vector<char>> cache_;
};

struct Gloo {
    std::shared_ptr<gloo::rendezvous::Context> ctx;
    std::chrono::milliseconds timeout;
    std::atomic<bool> aborted{ false };
    std::mutex mu;                                      // guards aborted's transition and `live`
    std::vector<gloo::transport::UnboundBuffer *> live; // buffers of the running collective
};

// Registers a collective's buffers so an abort can wake them; fails when
// the communicator is already aborted (checked under the same lock, so no
// abort is missed).
class LiveBuffers {
  public:
    LiveBuffers(Gloo *g, std::initializer_list<gloo::transport::UnboundBuffer *> bufs) : g_(g) {
        std::lock_guard<std::mutex> lock(g_->mu);
        if (g_->aborted) throw Aborted();
        g_->live.assign(bufs.begin(), bufs.end());
    }
    ~LiveBuffers() {
        std::lock_guard<std::mutex> lock(g_->mu);
        g_->live.clear();
    }

  private:
    Gloo *g_;
};

void wait_recv(Gloo *g, gloo::transport::UnboundBuffer *b) {
    if (!b->waitRecv(g->timeout) || g->aborted) throw Aborted();
}

void wait_send(Gloo *g, gloo::transport::UnboundBuffer *b) {
    if (!b->waitSend(g->timeout) || g->aborted) throw Aborted();
}

// Runs fn, turning what Gloo throws into a code and a line.
template <typename F> int guarded(Gloo *g, const char *what, char *err, size_t errlen, F fn) {
    if (g->aborted) return e2_errf(err, errlen, "comm %s: aborted", what), E2W_COMM_EABORTED;
    try {
        fn();
        return 0;
    } catch (const std::exception &e) {
        if (g->aborted) return e2_errf(err, errlen, "comm %s: aborted", what), E2W_COMM_EABORTED;
        e2_errf(err, errlen, "comm %s: %s", what, e.what());
        return strstr(e.what(), "imed out") || strstr(e.what(), "imeout") ? E2W_COMM_ETIMEDOUT
                                                                          : E2_ERR;
    }
}

template <typename T> void add(T *dst, const T *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

template <typename T> void scale(T *x, size_t n, int world) {
    T s = (T)1 / (T)world;
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

// Ring all-reduce of n elements of T in place. Chunk c holds elements
// [c n / W, (c + 1) n / W). Reduce-scatter: at step s rank r sends chunk
// r - s to its right neighbour and adds chunk r - s - 1 from its left one;
// after W - 1 steps it holds the full sum of chunk r + 1. All-gather: the
// full chunks travel around the ring the same way.
template <typename T> void ring_allreduce(Gloo *g, T *buf, size_t n) {
    const int W = g->ctx->size, r = g->ctx->rank;
    if (W == 1) return;
    auto lo = [&](int c) { return (size_t)c * n / (size_t)W; };
    auto len = [&](int c) { return lo(c + 1) - lo(c); };
    size_t maxlen = 0;
    for (int c = 0; c < W; c++) maxlen = std::max(maxlen, len(c));
    std::vector<T> tmp(std::max<size_t>(maxlen, 1));
    auto data = g->ctx->createUnboundBuffer(buf, n * sizeof(T));
    auto in = g->ctx->createUnboundBuffer(tmp.data(), tmp.size() * sizeof(T));
    LiveBuffers live(g, { data.get(), in.get() });
    const int left = (r + W - 1) % W, right = (r + 1) % W;
    const uint64_t slot = (uint64_t)g->ctx->nextSlot();
    for (int s = 0; s < W - 1; s++) {
        int cs = ((r - s) % W + W) % W, cr = ((r - s - 1) % W + W) % W;
        if (len(cs)) data->send(right, slot, lo(cs) * sizeof(T), len(cs) * sizeof(T));
        if (len(cr)) in->recv(left, slot, 0, len(cr) * sizeof(T));
        if (len(cr)) {
            wait_recv(g, in.get());
            add(buf + lo(cr), tmp.data(), len(cr));
        }
        if (len(cs)) wait_send(g, data.get());
    }
    for (int s = 0; s < W - 1; s++) {
        int cs = ((r + 1 - s) % W + W) % W, cr = ((r - s) % W + W) % W;
        if (len(cs)) data->send(right, slot, lo(cs) * sizeof(T), len(cs) * sizeof(T));
        if (len(cr)) data->recv(left, slot, lo(cr) * sizeof(T), len(cr) * sizeof(T));
        if (len(cr)) wait_recv(g, data.get());
        if (len(cs)) wait_send(g, data.get());
    }
}

int gloo_allreduce(void *impl, void *buf, size_t n, e2w_comm_dtype dtype, e2w_comm_op op, char *err,
                   size_t errlen) {
    Gloo *g = static_cast<Gloo *>(impl);
    if (dtype != E2W_COMM_F32 && dtype != E2W_COMM_F64)
        return e2_errf(err, errlen, "comm allreduce: Gloo reduces f32 or f64 buffers only");
    return guarded(g, "allreduce", err, errlen, [&] {
        if (dtype == E2W_COMM_F32) {
            ring_allreduce(g, static_cast<float *>(buf), n);
            if (op == E2W_COMM_AVG) scale(static_cast<float *>(buf), n, g->ctx->size);
        } else {
            ring_allreduce(g, static_cast<double *>(buf), n);
            if (op == E2W_COMM_AVG) scale(static_cast<double *>(buf), n, g->ctx->size);
        }
    });
}

// Ring all-gather of n elements of esz bytes in place, chunk c being
// [min(c S, n), min((c + 1) S, n)) with S = ceil(n / W) (e2w_comm_allgather):
// at step s rank r sends chunk r - s, which it holds, to its right
// neighbour and receives chunk r - s - 1 from its left one; after W - 1
// steps it holds them all. Empty chunks (n < W) are neither sent nor waited
// for, on both sides of a link alike.
void ring_allgather(Gloo *g, char *buf, size_t n, size_t esz) {
    const int W = g->ctx->size, r = g->ctx->rank;
    if (W == 1) return;
    const size_t S = (n + (size_t)W - 1) / (size_t)W;
    auto lo = [&](int c) { return std::min((size_t)c * S, n) * esz; };
    auto len = [&](int c) { return lo(c + 1) - lo(c); };
    auto data = g->ctx->createUnboundBuffer(buf, n * esz);
    LiveBuffers live(g, { data.get() });
    const int right = (r + 1) % W, left = (r + W - 1) % W;
    const uint64_t slot = (uint64_t)g->ctx->nextSlot();
    for (int s = 0; s < W - 1; s++) {
        int cs = ((r - s) % W + W) % W, cr = ((r - s - 1) % W + W) % W;
        if (len(cs)) data->send(right, slot, lo(cs), len(cs));
        if (len(cr)) data->recv(left, slot, lo(cr), len(cr));
        if (len(cr)) wait_recv(g, data.get());
        if (len(cs)) wait_send(g, data.get());
    }
}

int gloo_allgather(void *impl, void *buf, size_t n, size_t esz, char *err, size_t errlen) {
    Gloo *g = static_cast<Gloo *>(impl);
    return guarded(g, "allgather", err, errlen,
                   [&] { ring_allgather(g, static_cast<char *>(buf), n, esz); });
}

// The root sends the whole buffer to every rank: W - 1 copies from one
// link, fine for the small state broadcasts of a job's start.
int gloo_broadcast(void *impl, void *buf, size_t bytes, int root, char *err, size_t errlen) {
    Gloo *g = static_cast<Gloo *>(impl);
    return guarded(g, "broadcast", err, errlen, [&] {
        auto data = g->ctx->createUnboundBuffer(buf, bytes);
        LiveBuffers live(g, { data.get() });
        const uint64_t slot = (uint64_t)g->ctx->nextSlot();
        if (g->ctx->rank != root) {
            data->recv(root, slot);
            wait_recv(g, data.get());
            return;
        }
        for (int i = 0; i < g->ctx->size; i++)
            if (i != root) data->send(i, slot);
        for (int i = 0; i < g->ctx->size; i++)
            if (i != root) wait_send(g, data.get());
    });
}

// Every rank's all-gather step waits for a value that needed every rank's
// contribution, so the all-reduce of one float per rank is a barrier.
int gloo_barrier(void *impl, char *err, size_t errlen) {
    Gloo *g = static_cast<Gloo *>(impl);
    return guarded(g, "barrier", err, errlen, [&] {
        std::vector<float> one_each(g->ctx->size, 0.0f);
        ring_allreduce(g, one_each.data(), one_each.size());
    });
}

// Wakes the running collective's waits, then closes every pair: the peers
// see their connections reset and their collectives fail.
void gloo_abort(void *impl) {
    Gloo *g = static_cast<Gloo *>(impl);
    std::lock_guard<std::mutex> lock(g->mu);
    if (g->aborted.exchange(true)) return;
    for (auto *b : g->live) {
        b->abortWaitRecv();
        b->abortWaitSend();
    }
    for (int i = 0; i < g->ctx->size; i++) {
        if (i == g->ctx->rank) continue;
        auto &p = g->ctx->getPair(i);
        if (!p) continue;
        try {
            p->close();
        } catch (const std::exception &) {
        }
    }
}

void gloo_free(void *impl) {
    delete static_cast<Gloo *>(impl);
}

const e2w_comm_ops gloo_ops = { gloo_allreduce, gloo_broadcast, gloo_allgather, gloo_barrier,
                                gloo_abort,     gloo_free,      nullptr,        nullptr,
                                nullptr,        nullptr };

} // namespace

extern "C" int e2w_comm_gloo_create(const e2w_comm_config *cfg, void **impl,
                                    const e2w_comm_ops **ops, char *err, size_t errlen) {
    Gloo *g = new (std::nothrow) Gloo;
    if (!g) return e2_errf(err, errlen, "comm: out of memory");
    g->timeout = std::chrono::milliseconds(cfg->timeout_ms);
    int rc = guarded(g, "connect", err, errlen, [&] {
        gloo::transport::tcp::attr attr;
        if (cfg->iface && *cfg->iface)
            attr.iface = cfg->iface;
        else
            attr.hostname = cfg->hostname && *cfg->hostname ? cfg->hostname : "127.0.0.1";
        auto dev = gloo::transport::tcp::CreateDevice(attr);
        CallbackStore store(cfg->store, cfg->timeout_ms);
        gloo::rendezvous::PrefixStore prefixed("gloo", store);
        auto ctx = std::make_shared<gloo::rendezvous::Context>(cfg->rank, cfg->world_size);
        ctx->setTimeout(g->timeout);
        ctx->connectFullMesh(prefixed, dev);
        g->ctx = ctx;
    });
    if (rc < 0) {
        delete g;
        return rc;
    }
    *impl = g;
    *ops = &gloo_ops;
    return 0;
}
