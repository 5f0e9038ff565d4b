// Deferred release of TorchSharp's native Scalars. Why: see ScalarGuard.cs. Built by the library's
// project (ScalarGuard.targets) into libdalle2_scalar_guard.so, which lists libLibTorchSharp.so as
// a dependency, so that every other LibTorchSharp symbol looked up through this library is the
// original one; only THSTorch_dispose_scalar is defined here.
//
// A Scalar handed to us is not freed at once: it waits in a ring until it is at least
// DELAY_SECONDS old (or the ring is full, then the oldest goes first), so a libtorch call that
// was still reading it when .NET's finalizer released it has long finished with it.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define DELAY_SECONDS 5.0
#define CAPACITY (1u << 18)   /* 262,144 Scalars (16 bytes each in libtorch) at most held back */

typedef void (*dispose_fn)(void *);

static struct {
    void *scalar;
    double released_at;
} ring[CAPACITY];
static uint32_t head, count;
static dispose_fn original_dispose;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t held_total, freed_total;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static dispose_fn find_original(void)
{
    // LibTorchSharp is already loaded (it is this library's dependency): NOLOAD only looks it up.
    void *library = dlopen("libLibTorchSharp.so", RTLD_LAZY | RTLD_NOLOAD);
    return library ? (dispose_fn)dlsym(library, "THSTorch_dispose_scalar") : 0;
}

void THSTorch_dispose_scalar(void *scalar)
{
    if (!scalar) return;
    double now = now_seconds();
    pthread_mutex_lock(&lock);
    if (!original_dispose) original_dispose = find_original();
    while (count > 0 && (count == CAPACITY || now - ring[head].released_at >= DELAY_SECONDS)) {
        if (original_dispose) original_dispose(ring[head].scalar);
        head = (head + 1) % CAPACITY;
        count--;
        freed_total++;
    }
    uint32_t tail = (head + count) % CAPACITY;
    ring[tail].scalar = scalar;
    ring[tail].released_at = now;
    count++;
    held_total++;
    pthread_mutex_unlock(&lock);
}

// Checked once at start-up: without the original function nothing would ever be freed.
int dalle2_scalar_guard_ready(void)
{
    pthread_mutex_lock(&lock);
    if (!original_dispose) original_dispose = find_original();
    int ready = original_dispose != 0;
    pthread_mutex_unlock(&lock);
    return ready;
}

// For the tests and the training log: is this library the one in use, and what has it done.
void dalle2_scalar_guard_stats(uint64_t *held, uint64_t *freed, uint32_t *waiting)
{
    pthread_mutex_lock(&lock);
    *held = held_total;
    *freed = freed_total;
    *waiting = count;
    pthread_mutex_unlock(&lock);
}
