// The fast replay engine's harness: a Verilated WiretickTop driven from C.
//
// Built into a shared library (sim/fast.py compiles it with the Verilated model and
// loads it with ctypes).  It plays three parts around the model, one clock cycle at
// a time, with no Python in the loop:
//
//   * the MAC: frames from a buffer (offsets, lengths, bad-FCS flags), 8 bytes a
//     beat, one beat per cycle, `gap` idle cycles between frames;
//   * host memory: an AXI4 write slave whose writes go straight into the mapped
//     files of the DMA buffers (the ring files a Ring reader maps: no copy), with
//     guard zones around each buffer and a per-buffer list of the byte ranges
//     the device may write (the ring's slots and the shadow-head word);
//   * the host CPU: AXI4-Lite register reads and writes (the Device backend).
//
// Signal names are the ports of wiretick.hdl.top.WiretickTop (`mac__*`, `m_axi__*`,
// `s_axil__*`, `clk`, `rst`) on the board sim/fast.py puts it on (`rst` and the MAC
// stream reach the top through a register), Verilated with --prefix Vtop.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
using TraceFile = VerilatedFstC;
#elif VM_TRACE
#include "verilated_vcd_c.h"
using TraceFile = VerilatedVcdC;
#endif

#define MAC(x) mac___05F##x
#define AXI(x) m_axi___05F##x
#define LITE(x) s_axil___05F##x

namespace {

constexpr uint64_t kGuard = 4096;
constexpr uint8_t kGuardFill = 0xA5;
constexpr int kLanes = 64;  // bytes per beat of the 512-bit DMA bus

struct Region {
    uint64_t bus = 0;
    uint64_t size = 0;
    uint8_t *mem = nullptr;
    std::vector<uint8_t> guard_lo, guard_hi;
    std::vector<std::pair<uint64_t, uint64_t>> allowed;  // offsets [lo, hi)
};

struct Aw {
    uint64_t addr;
    uint32_t beats_left;
    uint32_t size;  // bytes per beat
    bool error;
};

struct BResp {
    uint64_t due;
    uint8_t resp;
};

struct Stats {  // wt_stats() order
    uint64_t cycles, beats, frames, bursts, bytes_written, unmapped, guard_hits, outside, protocol_errors, slverr;
};

struct Sim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vtop> top;
    std::vector<Region> regions;
    int last_region = -1;
    std::deque<Aw> aw;
    std::deque<std::vector<uint8_t>> w_early;  // W beats (data + 8 bytes strobe + 1 byte last) before their AW
    std::deque<BResp> b;
    Stats st{};
    uint32_t b_latency = 2;
    uint64_t ready_mask = ~0ull;  // bit (cycle % 64): AWREADY/WREADY that cycle
    bool ready_now = true;
    bool bvalid_now = false;
    uint64_t quiet = 0;  // consecutive cycles without bus activity
    double period_ps = 6400.0;
#if VM_TRACE
    std::unique_ptr<TraceFile> tfp;
#endif
};

inline Region *find_region(Sim *s, uint64_t addr, uint64_t n, bool *guard) {
    *guard = false;
    if (s->last_region >= 0) {
        Region &r = s->regions[s->last_region];
        if (addr >= r.bus && addr + n <= r.bus + r.size) return &r;
    }
    for (size_t i = 0; i < s->regions.size(); i++) {
        Region &r = s->regions[i];
        if (addr >= r.bus && addr + n <= r.bus + r.size) {
            s->last_region = (int)i;
            return &r;
        }
        if (addr + n > r.bus - kGuard && addr < r.bus + r.size + kGuard) {
            *guard = true;
            return &r;
        }
    }
    return nullptr;
}

// Store `n` bytes at bus address `addr`; false if no buffer is there.
bool store(Sim *s, uint64_t addr, const uint8_t *src, uint64_t n) {
    bool guard;
    Region *r = find_region(s, addr, n, &guard);
    if (!r) {
        s->st.unmapped++;
        return false;
    }
    if (!guard) {
        uint64_t off = addr - r->bus;
        if (!r->allowed.empty()) {
            bool ok = false;
            for (auto &a : r->allowed)
                if (off >= a.first && off + n <= a.second) { ok = true; break; }
            if (!ok) s->st.outside++;
        }
        std::memcpy(r->mem + off, src, n);
        s->st.bytes_written += n;
        return true;
    }
    s->st.guard_hits++;
    for (uint64_t k = 0; k < n; k++) {  // byte by byte: the write may straddle guard and buffer
        uint64_t a = addr + k;
        if (a < r->bus) {
            if (a >= r->bus - kGuard) r->guard_lo[a - (r->bus - kGuard)] = src[k];
        } else if (a >= r->bus + r->size) {
            if (a < r->bus + r->size + kGuard) r->guard_hi[a - (r->bus + r->size)] = src[k];
        } else {
            r->mem[a - r->bus] = src[k];
        }
    }
    return true;
}

// One W beat against the oldest AW.
void commit_beat(Sim *s, const uint8_t *data, uint64_t strb, bool last) {
    Aw &a = s->aw.front();
    uint64_t base = a.addr & ~uint64_t(kLanes - 1);
    bool ok = true;
    if (strb == ~0ull) {
        ok = store(s, base, data, kLanes);
    } else {
        int i = 0;
        while (i < kLanes) {  // one store per run of enabled byte lanes
            if ((strb >> i) & 1) {
                int j = i;
                while (j < kLanes && ((strb >> j) & 1)) j++;
                ok = store(s, base + i, data + i, j - i) && ok;
                i = j;
            } else {
                i++;
            }
        }
    }
    if (!ok) a.error = true;
    a.addr = (a.addr / a.size) * a.size + a.size;
    a.beats_left--;
    bool done = a.beats_left == 0;
    if (done != last) s->st.protocol_errors++;
    if (done || last) {
        uint8_t resp = a.error ? 2 : 0;  // SLVERR or OKAY
        if (a.error) s->st.slverr++;
        s->b.push_back({s->st.cycles + s->b_latency, resp});
        s->aw.pop_front();
        s->st.bursts++;
    }
}

inline void trace_dump(Sim *s, double t) {
#if VM_TRACE
    if (s->tfp) s->tfp->dump((uint64_t)t);
#else
    (void)s;
    (void)t;
#endif
}

// Two ways through a clock cycle:
//
// * the streaming path, `cycle()`: the inputs of the cycle are set, the outputs the
//   memory side samples are registered (AWVALID, WVALID, ... do not depend on any
//   input), so one eval applies the inputs and the rising edge together, and the
//   clock goes low without another (`clock_low`);
// * the register path, `low()` then `high()`: AXI4-Lite READY depends on VALID
//   combinationally, so the inputs are settled with the clock low, sampled, and
//   the edge follows.

// Clock low with the new inputs: combinational logic settles (register path).
inline void low(Sim *s) {
    Vtop *t = s->top.get();
    t->clk = 0;
    t->eval();
}

// Sample the memory side's handshakes (they happen at the coming edge).
inline bool sample_memory(Sim *s) {
    Vtop *t = s->top.get();
    bool active = false;
    if (s->ready_now) {
        if (t->AXI(awvalid)) {
            s->aw.push_back({t->AXI(awaddr), (uint32_t)t->AXI(awlen) + 1u, 1u << t->AXI(awsize), false});
            active = true;
        }
        if (t->AXI(wvalid)) {
            const uint8_t *data = reinterpret_cast<const uint8_t *>(t->AXI(wdata).data());
            uint64_t strb = t->AXI(wstrb);
            bool last = t->AXI(wlast);
            active = true;
            if (s->aw.empty() || !s->w_early.empty()) {
                std::vector<uint8_t> v(data, data + kLanes);
                for (int k = 0; k < 8; k++) v.push_back((uint8_t)(strb >> (8 * k)));
                v.push_back(last);
                s->w_early.push_back(std::move(v));
            } else {
                commit_beat(s, data, strb, last);
            }
        }
        while (!s->w_early.empty() && !s->aw.empty()) {
            auto &v = s->w_early.front();
            uint64_t strb = 0;
            for (int k = 0; k < 8; k++) strb |= (uint64_t)v[kLanes + k] << (8 * k);
            commit_beat(s, v.data(), strb, v[kLanes + 8]);
            s->w_early.pop_front();
        }
    }
    if (s->bvalid_now && t->AXI(bready)) s->b.pop_front();
    return active;
}

// Whether the model keeps its posedge detector's memory of `clk` in the member
// `__Vtrigprevexpr___TOP__clk__0` (Verilator 5's scheduler does): then the falling
// edge needs no eval of its own (see `clock_low`).
template <typename T, typename = void>
struct HasClkPrev : std::false_type {};
template <typename T>
struct HasClkPrev<T, std::void_t<decltype(std::declval<T &>().__Vtrigprevexpr___TOP__clk__0)>> : std::true_type {};

// Clock low after a rising edge.  An eval with the clock low changes no register
// (the design has rising-edge flip-flops only) and recomputes combinational logic
// the rising edge's eval already settled with the same inputs: all it does that
// matters is let the posedge detector see the clock low.  Without traces that is
// done directly, which halves the evals of a cycle (an eval always runs the
// input-dependent logic, whether or not an input changed); with traces the eval
// is kept so the waves show the falling edge as any simulator would.
inline void clock_low(Sim *s) {
    Vtop *t = s->top.get();
    t->clk = 0;
#if !VM_TRACE
    if constexpr (HasClkPrev<Vtop___024root>::value) {
        t->rootp->__Vtrigprevexpr___TOP__clk__0 = 0;
        return;
    }
#endif
    t->eval();
}

// The rising edge (inputs applied in the same eval), then clock low again, then the
// memory side's inputs for the next cycle.
inline void edge(Sim *s, bool active) {
    Vtop *t = s->top.get();
    t->clk = 1;
    t->eval();
    trace_dump(s, s->st.cycles * s->period_ps + s->period_ps / 2);
    clock_low(s);
    s->st.cycles++;
    trace_dump(s, s->st.cycles * s->period_ps);
    s->ready_now = (s->ready_mask >> (s->st.cycles & 63)) & 1;
    t->AXI(awready) = s->ready_now;
    t->AXI(wready) = s->ready_now;
    s->bvalid_now = !s->b.empty() && s->b.front().due <= s->st.cycles;
    t->AXI(bvalid) = s->bvalid_now;
    t->AXI(bresp) = s->bvalid_now ? s->b.front().resp : 0;
    bool busy = active || t->AXI(awvalid) || t->AXI(wvalid) || !s->b.empty() || !s->aw.empty() ||
                !s->w_early.empty();
    s->quiet = busy ? 0 : s->quiet + 1;
}

inline void high(Sim *s) { edge(s, sample_memory(s)); }

inline void cycle(Sim *s) { edge(s, sample_memory(s)); }

void set_mac(Vtop *t, bool valid, uint64_t data, uint32_t ctl) {
    t->MAC(valid) = valid;
    t->MAC(payload)[0] = (uint32_t)data;
    t->MAC(payload)[1] = (uint32_t)(data >> 32);
    t->MAC(payload)[2] = ctl;
}

}  // namespace

extern "C" {

// A new simulation: reset applied for 4 cycles (the design sees it a cycle later, and
// leaves it a cycle later).  `period_ps`: the clock period for traces.
void *wt_create(double period_ps) {
    Sim *s = new Sim;
    s->ctx.reset(new VerilatedContext);
    s->top.reset(new Vtop(s->ctx.get(), "top"));
    s->period_ps = period_ps;
    Vtop *t = s->top.get();
    set_mac(t, false, 0, 0);
    t->LITE(awvalid) = 0;
    t->LITE(wvalid) = 0;
    t->LITE(arvalid) = 0;
    t->LITE(bready) = 0;
    t->LITE(rready) = 0;
    t->LITE(awprot) = 0;
    t->LITE(arprot) = 0;
    t->AXI(awready) = 1;
    t->AXI(wready) = 1;
    t->AXI(bvalid) = 0;
    t->AXI(bresp) = 0;
    t->rst = 1;
    for (int i = 0; i < 4; i++) cycle(s);
    t->rst = 0;
    cycle(s);
    cycle(s);
    return s;
}

void wt_destroy(void *p) {
    Sim *s = static_cast<Sim *>(p);
#if VM_TRACE
    if (s->tfp) s->tfp->close();
#endif
    for (auto &r : s->regions) munmap(r.mem, r.size);
    s->top->final();
    delete s;
}

int wt_has_trace(void) { return VM_TRACE; }

// Start writing an FST of every signal to `path` (a build with traces only).
int wt_trace_open(void *p, const char *path) {
#if VM_TRACE
    Sim *s = static_cast<Sim *>(p);
    s->ctx->traceEverOn(true);
    s->tfp.reset(new TraceFile);
    s->top->trace(s->tfp.get(), 99);
    s->tfp->open(path);
    return 0;
#else
    (void)p;
    (void)path;
    return -1;
#endif
}

void wt_trace_close(void *p) {
#if VM_TRACE
    Sim *s = static_cast<Sim *>(p);
    if (s->tfp) {
        s->tfp->close();
        s->tfp.reset();
    }
#else
    (void)p;
#endif
}

// Map `size` bytes of the file `path` at bus address `bus` (0: ok, -1: open/mmap failed, -2: overlap).
int wt_map(void *p, uint64_t bus, uint64_t size, const char *path) {
    Sim *s = static_cast<Sim *>(p);
    for (auto &r : s->regions)
        if (bus < r.bus + r.size + 2 * kGuard && r.bus < bus + size + 2 * kGuard) return -2;
    int fd = open(path, O_RDWR);
    if (fd < 0) return -1;
    void *m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return -1;
    Region r;
    r.bus = bus;
    r.size = size;
    r.mem = static_cast<uint8_t *>(m);
    r.guard_lo.assign(kGuard, kGuardFill);
    r.guard_hi.assign(kGuard, kGuardFill);
    s->regions.push_back(std::move(r));
    s->last_region = -1;
    return 0;
}

int wt_unmap(void *p, uint64_t bus) {
    Sim *s = static_cast<Sim *>(p);
    for (size_t i = 0; i < s->regions.size(); i++) {
        if (s->regions[i].bus == bus) {
            munmap(s->regions[i].mem, s->regions[i].size);
            s->regions.erase(s->regions.begin() + i);
            s->last_region = -1;
            return 0;
        }
    }
    return -1;
}

// The device may write offsets [lo, hi) of the buffer at `bus` (call once per range;
// none: anywhere in the buffer).  Writes elsewhere in it count in stats.outside.
int wt_allow(void *p, uint64_t bus, uint64_t lo, uint64_t hi) {
    Sim *s = static_cast<Sim *>(p);
    for (auto &r : s->regions)
        if (r.bus == bus) {
            r.allowed.push_back({lo, hi});
            return 0;
        }
    return -1;
}

// 1 if every guard byte of every buffer still holds the fill pattern.
int wt_guards_intact(void *p) {
    Sim *s = static_cast<Sim *>(p);
    for (auto &r : s->regions)
        for (uint64_t k = 0; k < kGuard; k++)
            if (r.guard_lo[k] != kGuardFill || r.guard_hi[k] != kGuardFill) return 0;
    return 1;
}

void wt_set_bus(void *p, uint32_t b_latency, uint64_t ready_mask) {
    Sim *s = static_cast<Sim *>(p);
    s->b_latency = b_latency;
    s->ready_mask = ready_mask ? ready_mask : ~0ull;
}

void wt_stats(void *p, uint64_t *out) {
    Sim *s = static_cast<Sim *>(p);
    std::memcpy(out, &s->st, sizeof(Stats));
}

uint64_t wt_cycles(void *p) { return static_cast<Sim *>(p)->st.cycles; }

// AXI4-Lite write of one 32-bit register word; returns BRESP (or 0xFF on timeout).
uint32_t wt_reg_write(void *p, uint32_t addr, uint32_t value) {
    Sim *s = static_cast<Sim *>(p);
    Vtop *t = s->top.get();
    t->LITE(awaddr) = addr;
    t->LITE(wdata) = value;
    t->LITE(wstrb) = 0xF;
    t->LITE(awvalid) = 1;
    t->LITE(wvalid) = 1;
    t->LITE(bready) = 1;
    bool aw = false, w = false;
    for (int i = 0; i < 1000; i++) {
        low(s);
        bool aw_fire = !aw && t->LITE(awvalid) && t->LITE(awready);
        bool w_fire = !w && t->LITE(wvalid) && t->LITE(wready);
        bool b_fire = aw && w && t->LITE(bvalid);
        uint32_t resp = t->LITE(bresp);
        high(s);
        if (aw_fire) { aw = true; t->LITE(awvalid) = 0; }
        if (w_fire) { w = true; t->LITE(wvalid) = 0; }
        if (b_fire) {
            t->LITE(bready) = 0;
            return resp;
        }
    }
    t->LITE(awvalid) = t->LITE(wvalid) = t->LITE(bready) = 0;
    return 0xFF;
}

// AXI4-Lite read of one 32-bit register word (*ok = 0 on timeout).
uint32_t wt_reg_read(void *p, uint32_t addr, int *ok) {
    Sim *s = static_cast<Sim *>(p);
    Vtop *t = s->top.get();
    t->LITE(araddr) = addr;
    t->LITE(arvalid) = 1;
    t->LITE(rready) = 1;
    bool ar = false;
    for (int i = 0; i < 1000; i++) {
        low(s);
        bool ar_fire = !ar && t->LITE(arvalid) && t->LITE(arready);
        bool r_fire = ar && t->LITE(rvalid);
        uint32_t data = t->LITE(rdata);
        high(s);
        if (ar_fire) { ar = true; t->LITE(arvalid) = 0; }
        if (r_fire) {
            t->LITE(rready) = 0;
            if (ok) *ok = 1;
            return data;
        }
    }
    t->LITE(arvalid) = t->LITE(rready) = 0;
    if (ok) *ok = 0;
    return 0;
}

// Play frames i = 0..n-1 (buf[off[i]:off[i]+len[i]], bad[i]: FCS error on the last
// beat) into the MAC, `gap` idle cycles after each.  Returns the cycles it took.
int64_t wt_push(void *p, const uint8_t *buf, const int64_t *off, const int64_t *len, const uint8_t *bad,
                int64_t n, int32_t gap) {
    Sim *s = static_cast<Sim *>(p);
    Vtop *t = s->top.get();
    uint64_t c0 = s->st.cycles;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *f = buf + off[i];
        int64_t L = len[i];
        for (int64_t b = 0; b < L; b += 8) {
            int64_t k = L - b < 8 ? L - b : 8;
            uint64_t d = 0;
            std::memcpy(&d, f + b, (size_t)k);
            bool last = b + 8 >= L;
            uint32_t ctl = (uint32_t)k | (b == 0 ? 16u : 0u) | (last ? 32u : 0u) | ((last && bad[i]) ? 64u : 0u);
            set_mac(t, true, d, ctl);
            cycle(s);
            s->st.beats++;
        }
        set_mac(t, false, 0, 0);
        for (int32_t g = 0; g < gap; g++) cycle(s);
        s->st.frames++;
    }
    return (int64_t)(s->st.cycles - c0);
}

// `n` idle cycles.
void wt_run(void *p, int64_t n) {
    Sim *s = static_cast<Sim *>(p);
    set_mac(s->top.get(), false, 0, 0);
    for (int64_t i = 0; i < n; i++) cycle(s);
}

// Idle the MAC until the memory bus has been quiet (nothing valid, nothing owed)
// for `quiet` cycles, or `max_cycles` passed; returns the cycles run (-1: timeout).
int64_t wt_run_until_idle(void *p, int64_t quiet, int64_t max_cycles) {
    Sim *s = static_cast<Sim *>(p);
    set_mac(s->top.get(), false, 0, 0);
    uint64_t c0 = s->st.cycles;
    s->quiet = 0;
    while ((int64_t)s->quiet < quiet) {
        if ((int64_t)(s->st.cycles - c0) >= max_cycles) return -1;
        cycle(s);
    }
    return (int64_t)(s->st.cycles - c0);
}

}  // extern "C"
