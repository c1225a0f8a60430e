/* Callee library for tests/exec_callees.rs.

   Every callee is compiled twice: the System V version `name` and an
   `__attribute__((ms_abi))` twin `name_ms` (the Microsoft x64 convention),
   from one body. For each callee there is a reference caller

       void ref_name(void *ret, void **argv)      (and ref_name_ms)

   that calls the callee DIRECTLY (gcc generates that call, so gcc is the
   oracle), stores its result in `ret` (sizeof the result type) and stores
   each argument value it passed into the buffer argv[i]. The Rust test then
   passes those same argument bytes through jitffi's trampolines and
   compares the result bytes, and the sink (what the callee recorded of the
   arguments it received), with the reference call's.

   The cases themselves are in callees_cases.h (written by hand),
   callees_sizes.h and callees_floats.h (generated once by a script, kept
   as text): X-macro lines, included three times below; their types in callees_types.h. The
   table callee_cases[] tells the Rust side each case's name, function
   symbol, C declaration, and whether it has an ms_abi twin.

   Built by tests/common/mod.rs with gcc -shared -fPIC at -O0 and -O2. */

#include <complex.h>
#include <stddef.h>
#include <string.h>

#include "callees_types.h"

typedef double (*dfn)(double);

/* ---- the sink: what callees received --------------------------------- */

unsigned char callee_sink[1024];
size_t callee_sink_len;

void sink_reset(void) {
    memset(callee_sink, 0, sizeof callee_sink);
    callee_sink_len = 0;
}

/* Returns the number of bytes recorded (may exceed the sink: then only the
   first sizeof(callee_sink) bytes are kept). */
size_t sink_len(void) { return callee_sink_len; }
const unsigned char *sink_data(void) { return callee_sink; }

/* noinline: keeps gcc -O2 from a false -Wstringop-overflow on the guarded copy. */
__attribute__((noinline)) static void rec(const void *p, size_t n) {
    if (callee_sink_len + n <= sizeof callee_sink)
        memcpy(callee_sink + callee_sink_len, p, n);
    callee_sink_len += n;
}

/* Records a value's bytes. long double values record their 10 significant
   bytes only (the 6 padding bytes are unspecified). */
#define REC(x)                                                               \
    do {                                                                     \
        __typeof__(x) rec_v_ = (x);                                          \
        rec(&rec_v_, __builtin_types_compatible_p(__typeof__(x), long double) \
                         ? 10 : sizeof rec_v_);                              \
    } while (0)

const char callee_text[] = "jitffi callee text";
int callee_int = 0x5A5A;

static double half(double x) { return x / 2; }

static void FILLP(void *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed + 13 * i + (i >> 3));
}
#define FILL(T, seed) ({ T fill_t_; FILLP(&fill_t_, sizeof fill_t_, (seed)); fill_t_; })

static unsigned long long hashb(const void *p, size_t n) {
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
    return h;
}

/* ---- pass 1: the callees and their ms_abi twins ---------------------- */

#define TWIN_BOTH(...) __VA_ARGS__
#define TWIN_SYSV(...)
#define MS __attribute__((ms_abi))

#define CASE(abis, ret, name, params, args, ...) \
    ret name params __VA_ARGS__                  \
    TWIN_##abis(MS ret name##_ms params __VA_ARGS__)
#define VCASE(abis, name, params, args, ...) CASE(abis, void, name, params, args, __VA_ARGS__)
#define CALL(...)
#include "callees_cases.h"
#include "callees_sizes.h"
#include "callees_floats.h"
#undef CASE
#undef VCASE
#undef CALL

/* Variadic callees, written per va_list flavour (an ms_abi function needs
   __builtin_ms_va_list; __builtin_va_arg reads either kind). */

#define VSUM_BODY(VL, START, END)                    \
    {                                                \
        VL ap;                                       \
        START(ap, n);                                \
        int s = 0;                                   \
        for (int i = 0; i < n; i++) {                \
            int v = __builtin_va_arg(ap, int);       \
            REC(v);                                  \
            s = s * 3 + v;                           \
        }                                            \
        END(ap);                                     \
        return s;                                    \
    }
int vsum(int n, ...) VSUM_BODY(__builtin_va_list, __builtin_va_start, __builtin_va_end)
MS int vsum_ms(int n, ...) VSUM_BODY(__builtin_ms_va_list, __builtin_ms_va_start, __builtin_ms_va_end)

/* fmt: i = int, L = long long, d = double. */
#define VMIX_BODY(VL, START, END)                                   \
    {                                                               \
        VL ap;                                                      \
        START(ap, fmt);                                             \
        double s = 0;                                               \
        for (const char *p = fmt; *p; p++) {                        \
            if (*p == 'i') {                                        \
                int v = __builtin_va_arg(ap, int);                  \
                REC(v);                                             \
                s = s * 2 + v;                                      \
            } else if (*p == 'L') {                                 \
                long long v = __builtin_va_arg(ap, long long);      \
                REC(v);                                             \
                s = s * 2 + (double)v;                              \
            } else {                                                \
                double v = __builtin_va_arg(ap, double);            \
                REC(v);                                             \
                s = s * 2 + v;                                      \
            }                                                       \
        }                                                           \
        END(ap);                                                    \
        return s;                                                   \
    }
double vmix(const char *fmt, ...) VMIX_BODY(__builtin_va_list, __builtin_va_start, __builtin_va_end)
MS double vmix_ms(const char *fmt, ...) VMIX_BODY(__builtin_ms_va_list, __builtin_ms_va_start, __builtin_ms_va_end)

/* Tricky case 25: int f(int, ...) called with (2.5, 3). */
#define TC25_BODY(VL, START, END)                        \
    {                                                    \
        VL ap;                                           \
        START(ap, n);                                    \
        double d = __builtin_va_arg(ap, double);         \
        int k = __builtin_va_arg(ap, int);               \
        END(ap);                                         \
        REC(n); REC(d); REC(k);                          \
        return (int)(d * 1000) + k * 10 + n;             \
    }
int tc25(int n, ...) TC25_BODY(__builtin_va_list, __builtin_va_start, __builtin_va_end)
MS int tc25_ms(int n, ...) TC25_BODY(__builtin_ms_va_list, __builtin_ms_va_start, __builtin_ms_va_end)

/* Tricky case 26: struct {double a, b;} as a variadic argument. In the
   Microsoft convention a 16-byte struct travels by reference, variadic or
   not, and the ms_abi twin reads it so: gcc 12's __builtin_va_arg(ap,
   struct dd) on an ms va_list reads 16 bytes from the slot itself (the
   pointer and the next slot), which disagrees with gcc's own ms_abi caller,
   which passes a pointer. */
#define TC26_BODY(VL, START, END, FETCH)                 \
    {                                                    \
        VL ap;                                           \
        START(ap, n);                                    \
        struct dd s = FETCH(ap);                         \
        END(ap);                                         \
        REC(n); REC(s);                                  \
        return s.a * 10 + s.b + n;                       \
    }
#define DD_BY_VALUE(ap) __builtin_va_arg(ap, struct dd)
#define DD_BY_REF(ap) (*__builtin_va_arg(ap, struct dd *))
double tc26(int n, ...) TC26_BODY(__builtin_va_list, __builtin_va_start, __builtin_va_end, DD_BY_VALUE)
MS double tc26_ms(int n, ...)
    TC26_BODY(__builtin_ms_va_list, __builtin_ms_va_start, __builtin_ms_va_end, DD_BY_REF)

/* ---- pass 2: reference callers ---------------------------------------- */

/* A(i, T, init): argument i, of type T, initialised with init; its bytes
   are stored in argv[i] for the Rust side, and its value passed. */
#define A(i, T, ...)                                    \
    ({                                                  \
        T arg_v_ = __VA_ARGS__;                         \
        memcpy(argv[i], &arg_v_, sizeof arg_v_);        \
        arg_v_;                                         \
    })

#define REF(ret, tag, fn, args)                         \
    void ref_##tag(void *ret_, void **argv) {           \
        (void)argv;                                     \
        ret r_ = fn args;                               \
        memcpy(ret_, &r_, sizeof r_);                   \
    }
#define VREF(tag, fn, args)                             \
    void ref_##tag(void *ret_, void **argv) {           \
        (void)ret_; (void)argv;                         \
        fn args;                                        \
    }

#define CASE(abis, ret, name, params, args, ...) \
    REF(ret, name, name, args) TWIN_##abis(REF(ret, name##_ms, name##_ms, args))
#define VCASE(abis, name, params, args, ...) \
    VREF(name, name, args) TWIN_##abis(VREF(name##_ms, name##_ms, args))
#define CALL(abis, ret, tag, fn, decl, args) \
    REF(ret, tag, fn, args) TWIN_##abis(REF(ret, tag##_ms, fn##_ms, args))
#include "callees_cases.h"
#include "callees_sizes.h"
#include "callees_floats.h"
#undef CASE
#undef VCASE
#undef CALL

/* ---- pass 3: the table ------------------------------------------------ */

struct callee_case {
    const char *name;  /* the case: reference callers ref_<name>, ref_<name>_ms */
    const char *fn;    /* the callee symbol (and <fn>_ms) */
    const char *decl;  /* jitffi declaration (types from callees_types.h) */
    int has_ms;        /* 1 when the ms_abi twin exists */
};

#define HAS_MS_BOTH 1
#define HAS_MS_SYSV 0
#define CASE(abis, ret, name, params, args, ...) {#name, #name, #ret " " #name #params, HAS_MS_##abis},
#define VCASE(abis, name, params, args, ...) {#name, #name, "void " #name #params, HAS_MS_##abis},
#define CALL(abis, ret, tag, fn, decl, args) {#tag, #fn, decl, HAS_MS_##abis},
const struct callee_case callee_cases[] = {
#include "callees_cases.h"
#include "callees_sizes.h"
#include "callees_floats.h"
    {0, 0, 0, 0},
};
#undef CASE
#undef VCASE
#undef CALL
