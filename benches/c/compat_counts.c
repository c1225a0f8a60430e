/* An unmodified libffi program for instruction counts of the libffi API
 * (benches/compat_callgrind.sh): run as is it uses the system libffi, with
 * LD_PRELOAD=target/release/libjitffi.so (built with the libffi-compat
 * feature) the same binary uses jitffi's layer.
 *
 *   compat_counts CASE N
 *     CASE: add3 mix8 struct16 sret32 args12   (ffi_call on the rows of
 *           benches/rows.rs), create (ffi_closure_alloc +
 *           ffi_prep_closure_loc + ffi_closure_free), upcall (a call of an
 *           int(int, int) closure)
 *
 * Everything is prepared and every case checked once whatever N is, so
 * (count(N) - count(0)) / N is the cost of one operation plus its loop.
 * The loop's wall-clock time per operation goes to stdout
 * (benches/compat_time.sh). */
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { long a; double b; } ld;
typedef struct { long a, b, c, d; } q4;

__attribute__((noinline)) long add3(long a, long b, long c) { return a + b + c; }
__attribute__((noinline)) double mix8(long a, long b, long c, long d, double e, double f, double g, double h) {
    return (double)(a + b + c + d) + e + f + g + h;
}
__attribute__((noinline)) double ld_int(ld x, int n) { return (double)x.a + x.b + n; }
__attribute__((noinline)) q4 q4_of(long x) { q4 r = {x, x + 1, x + 2, x + 3}; return r; }
__attribute__((noinline)) long twelve(long a, double b, int c, double d, long e, double f, int g,
                                      double h, long i, long j, long k, long l) {
    return a + c + e + g + i + j + k + l + (long)(b + d + f + h);
}

static void add_handler(ffi_cif *cif, void *ret, void **args, void *ud) {
    (void)cif; (void)ud;
    *(ffi_arg *)ret = (ffi_arg)(*(int *)args[0] + *(int *)args[1]);
}

static void die(const char *what) { fprintf(stderr, "compat_counts: %s\n", what); exit(1); }

int main(int argc, char **argv) {
    if (argc != 3) die("usage: compat_counts CASE N");
    const char *which = argv[1];
    long n = atol(argv[2]);

    ffi_type *ld_el[] = {&ffi_type_sint64, &ffi_type_double, NULL};
    ffi_type ld_t = {0, 0, FFI_TYPE_STRUCT, ld_el};
    ffi_type *q4_el[] = {&ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64, NULL};
    ffi_type q4_t = {0, 0, FFI_TYPE_STRUCT, q4_el};

    long a3[3] = {1, 2, 3};
    long m8i[4] = {1, 2, 3, 4};
    double m8d[4] = {0.5, 1.5, 2.5, 3.5};
    ld ldv = {7, 0.25};
    int ldn = -3;
    long q4x = 40;
    long twi[6] = {1, 2, 3, 4, 5, 6};
    double twd[4] = {0.5, 1.5, 2.5, 3.5};
    int twn[2] = {-1, -2};

    struct { const char *name; void (*fn)(void); ffi_type *rt; unsigned nargs; ffi_type *at[12]; void *av[12]; } rows[] = {
        {"add3", (void (*)(void))add3, &ffi_type_sint64, 3,
         {&ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64}, {&a3[0], &a3[1], &a3[2]}},
        {"mix8", (void (*)(void))mix8, &ffi_type_double, 8,
         {&ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64,
          &ffi_type_double, &ffi_type_double, &ffi_type_double, &ffi_type_double},
         {&m8i[0], &m8i[1], &m8i[2], &m8i[3], &m8d[0], &m8d[1], &m8d[2], &m8d[3]}},
        {"struct16", (void (*)(void))ld_int, &ffi_type_double, 2, {&ld_t, &ffi_type_sint32}, {&ldv, &ldn}},
        {"sret32", (void (*)(void))q4_of, &q4_t, 1, {&ffi_type_sint64}, {&q4x}},
        {"args12", (void (*)(void))twelve, &ffi_type_sint64, 12,
         {&ffi_type_sint64, &ffi_type_double, &ffi_type_sint32, &ffi_type_double, &ffi_type_sint64,
          &ffi_type_double, &ffi_type_sint32, &ffi_type_double, &ffi_type_sint64, &ffi_type_sint64,
          &ffi_type_sint64, &ffi_type_sint64},
         {&twi[0], &twd[0], &twn[0], &twd[1], &twi[1], &twd[2], &twn[1], &twd[3], &twi[2], &twi[3],
          &twi[4], &twi[5]}},
    };
    /* Expected results, from direct calls. */
    union { long l; double d; q4 q; char bytes[32]; } want[5], got;
    memset(want, 0, sizeof want);
    want[0].l = add3(1, 2, 3);
    want[1].d = mix8(1, 2, 3, 4, 0.5, 1.5, 2.5, 3.5);
    want[2].d = ld_int(ldv, ldn);
    want[3].q = q4_of(q4x);
    want[4].l = twelve(1, 0.5, -1, 1.5, 2, 2.5, -2, 3.5, 3, 4, 5, 6);

    ffi_cif cifs[5];
    int sel = -1;
    for (int r = 0; r < 5; r++) {
        if (ffi_prep_cif(&cifs[r], FFI_DEFAULT_ABI, rows[r].nargs, rows[r].rt, rows[r].at) != FFI_OK)
            die("ffi_prep_cif");
        memset(&got, 0, sizeof got);
        ffi_call(&cifs[r], rows[r].fn, &got, rows[r].av);
        if (memcmp(&got, &want[r], r == 3 ? 32 : 8) != 0) die(rows[r].name);
        if (strcmp(which, rows[r].name) == 0) sel = r;
    }

    ffi_cif ccif;
    ffi_type *cat[2] = {&ffi_type_sint32, &ffi_type_sint32};
    if (ffi_prep_cif(&ccif, FFI_DEFAULT_ABI, 2, &ffi_type_sint32, cat) != FFI_OK) die("closure cif");
    void *code;
    ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!cl || ffi_prep_closure_loc(cl, &ccif, add_handler, NULL, code) != FFI_OK) die("closure");
    int (*fp)(int, int) = (int (*)(int, int))code;
    if (fp(40, 2) != 42) die("closure result");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (sel >= 0) {
        for (long i = 0; i < n; i++) {
            ffi_call(&cifs[sel], rows[sel].fn, &got, rows[sel].av);
            __asm__ volatile("" ::: "memory");
        }
    } else if (strcmp(which, "create") == 0) {
        for (long i = 0; i < n; i++) {
            void *c2;
            ffi_closure *k = ffi_closure_alloc(sizeof(ffi_closure), &c2);
            if (ffi_prep_closure_loc(k, &ccif, add_handler, NULL, c2) != FFI_OK) die("create");
            __asm__ volatile("" ::"r"(c2) : "memory");
            ffi_closure_free(k);
        }
    } else if (strcmp(which, "upcall") == 0) {
        int (*volatile f)(int, int) = fp;
        for (long i = 0; i < n; i++) {
            int r = f(2, 3);
            __asm__ volatile("" ::"r"(r) : "memory");
        }
    } else {
        die("unknown case");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n > 0)
        printf("%.2f ns/op\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
    ffi_closure_free(cl);
    return 0;
}
